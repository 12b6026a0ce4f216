"""The usage path: `record` builds one usage event per request, `audit` chains its audit record,
`reporter` queues, spools and sends them in batches to the control plane."""
