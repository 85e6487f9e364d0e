"""The virtual agent: end users ask "is X down?" and "how do I…?" (DM, @-mention, ``/ask``); answers come from
open incidents and the knowledge base, with their sources, within the asker's audience; below the confidence
threshold it abstains and offers a hand-over."""
