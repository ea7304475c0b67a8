"""The promotion gate: which registered model version becomes the champion."""
