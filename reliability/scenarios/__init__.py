"""The fault scenarios: each module has `async def run(stack, mentions) -> dict` (see
reliability/__main__.py for the registry and the keys every result carries)."""
