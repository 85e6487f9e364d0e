"""Incidents get a category (:mod:`knowledge.classify.categories`): the model's, computed outside the write
transaction and applied in it (:mod:`.live`), or a person's pick, stored as a labelled example (:mod:`.picks`)."""
