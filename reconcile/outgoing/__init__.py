"""Mail mailroll sends: the SMTP transport and outbox (mailer), receipts, reminders, bounces.

Built on the conclusions in reconcile/ (status, judge); never imported by them.
"""
