"""The greeter example in Python: the same `greet` export as the Rust greeter."""

import wit_world


class WitWorld(wit_world.WitWorld):
    def greet(self, name: str) -> str:
        return f"Hello, {name}!"
