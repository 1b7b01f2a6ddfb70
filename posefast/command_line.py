"""What the ``evaluate``, ``infer`` and ``export`` entry points share about their command lines."""


def dashed_options(argv: list[str]) -> list[str]:
    """``argv`` with each ``--a_b`` option (``--a_b=v`` too) spelled ``--a-b``: these tools name
    their options with ``-``, ``python -m posefast.train`` accepts both, and a user switching
    between them should not have to remember which. Values are left as they are."""
    out = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        if name.startswith("--") and "_" in name:
            arg = "--" + name[2:].replace("_", "-") + eq + value
        out.append(arg)
    return out
