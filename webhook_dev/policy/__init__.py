"""Admission policies (ValidatingAdmissionPolicy, MutatingAdmissionPolicy) checked against
a webhook's recorded or live answers: ``decision`` (pure: what a policy decided and how it
compares with the webhook's answer), ``evaluator`` (the Go program of Kubernetes' own
plugins, driven over a pipe), ``check`` (one exchange through both, and many in order)."""
