"""The LLM gateway: the only code that talks to language models (a leaf: it imports no models)."""
