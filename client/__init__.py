"""jamnet clients: the browser client (web/) and the command-line client."""
