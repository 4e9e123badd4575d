"""The ``mailroll`` command line: ``main`` (the console entry point, with the quick road for
``status --json``), ``app`` (the click group and what every command shares) and one ``*_cmd``
module per area. Kept empty so that the entry point starts without loading click.
"""
