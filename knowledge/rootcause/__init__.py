"""Root-cause ranking: which component of an incident most probably caused it, with the evidence behind it."""
