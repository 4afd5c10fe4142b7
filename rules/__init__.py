"""The rules engine: policy written in rules files, enforced by the built-in ``rules`` interceptor.

    source     which files a list of paths names; YAML read with line numbers; Problem, RulesError
    validate   the published JSON Schema (schema.json), with messages for policy authors
    match      match conditions compiled to predicates (static ones feed the index)
    actions    actions compiled once
    ruleset    load + compile + order + index: an immutable RuleSet
    subject    one message as the conditions see it; ToolCatalog of tool annotations
    engine     evaluation, tools/list filtering, the audit log line
    redact     detectors and the plain redact() function shared with the audit log and the tap
    ratelimit  the RateCounter seam and its in-memory implementation
    metrics    Prometheus metrics
    cases      policy unit tests (``rules test --cases``)
    cli        ``shadowproxy rules check`` and ``shadowproxy rules test``

The package imports nothing itself, so ``shadowproxy.core.redact`` stays cheap to import.
See README.md for the file format.
"""
