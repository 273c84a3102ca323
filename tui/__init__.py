"""The Textual client: watches a run directory and sends control requests. Never imports `daemon`."""
