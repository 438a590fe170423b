"""The ``crossnas`` command line: thin subcommands over the library."""
