"""Data: corpus sources → tokenizer → token shards → batch loader."""
