"""Data layer (bottom): the shard schema, corpus preparation and the DataModules; imports data/features/text/audio and
``constants`` only."""
