"""AdmissionReviews and exchanges as plain data: parse, answer, check, compare. Pure."""
