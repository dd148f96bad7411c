"""The molecules data set."""


def dataset_records():
    """Return the data-set records."""
    return []
