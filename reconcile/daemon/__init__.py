"""The long-running service: scheduling polls, IMAP IDLE, the heartbeat, and the locks that keep
one poller and one sender at a time. Built on ingest/, reconcile's conclusions and outgoing/.
"""
