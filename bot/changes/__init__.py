"""Change events (deploys, config changes, feature-flag flips) received on ``POST /changes``."""
