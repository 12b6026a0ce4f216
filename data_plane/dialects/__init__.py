"""What clients speak: parsing and answering the OpenAI (`openai`, `embeddings`) and Anthropic
(`anthropic`, `anthropic_stream`) client APIs. Pure: bytes and dicts in, dicts out, no I/O."""
