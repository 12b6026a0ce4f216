"""The tokenizer shipped with the data plane, for token estimates (``encoding``)."""
