"""One module per command (or command group); ``core.COMMANDS`` lists the top-level verbs."""
