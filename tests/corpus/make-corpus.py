#!/usr/bin/env python3
"""Writes the hostile-input corpus: malformed control requests (control/NOUN.VERB--CASE.json)
and manifests (manifests/CASE.yaml), each with NAME.expect holding a substring its refusal
must contain. Run once; the files are kept in the repository and read by the tests
(interfaces/lattice/tests/corpus.rs, wadm-like/validate/tests/corpus.rs, tests/tests/hostile_corpus.rs)."""
import json, os

here = os.path.dirname(os.path.abspath(__file__))
MB = 1 << 20

def write(folder, name, body, expect):
    path = os.path.join(here, folder, name)
    with open(path, "wb") as f:
        f.write(body if isinstance(body, bytes) else body.encode())
    with open(os.path.splitext(path)[0] + ".expect", "w") as f:
        f.write(expect + "\n")

def j(v):
    return json.dumps(v)

scale = lambda **kw: j({"component_id": "c", "image": "/c.wasm", "replicas": 1, **kw})
key = {"source_id": "a", "wit_namespace": "wasi", "wit_package": "keyvalue", "name": "default"}
link = lambda **kw: j({"link": {"source_id": "a", "target_id": "b", "wit_namespace": "wasi",
                                "wit_package": "keyvalue", "interfaces": ["store"], **kw}})
control = [
    ("component.scale--replicas-string", scale(replicas="2"), "invalid type: string \"2\", expected u32"),
    ("component.scale--replicas-negative", scale(replicas=-1), "invalid value: integer `-1`, expected u32"),
    ("component.scale--replicas-2pow32", scale(replicas=2**32), "invalid value: integer `4294967296`, expected u32"),
    ("component.scale--replicas-huge-float", scale(replicas=1e300), "expected u32"),
    ("component.scale--replicas-above-ceiling", scale(replicas=1_000_000), "at most 10000 replicas"),
    ("component.scale--timeout-string", scale(timeout_ms="forever"), "expected u64"),
    ("component.scale--unknown-field", scale(evil=True), "unknown field `evil`"),
    ("component.scale--missing-id", j({"image": "/c.wasm", "replicas": 1}), "missing field `component_id`"),
    ("component.scale--array", j([1, 2, 3]), "malformed scale request"),
    ("component.scale--deep-nesting", '{"component_id":"c","replicas":1,"annotations":' + "[" * 100_000 + "]" * 100_000 + "}", "invalid type: sequence"),
    ("component.scale--deep-nesting-top", "[" * 100_000 + "]" * 100_000, "malformed scale request"),
    ("component.scale--overlong-id", scale(component_id="c" * 10_000), "(10000 characters)"),
    ("component.scale--id-with-dot", scale(component_id="a.b"), "invalid component id"),
    ("component.scale--id-wildcard", scale(component_id=">"), "invalid component id"),
    ("component.scale--id-nul", scale(component_id="a\u0000b"), "invalid component id"),
    ("component.scale--megabyte-image", scale(image="x" * MB), "must be at most 4096 characters"),
    ("component.scale--megabyte-string-for-number", scale(replicas="9" * MB), "(1048576 characters)"),
    ("component.scale--invalid-utf8", b'{"component_id":"\xff\xfe","image":"/c.wasm","replicas":1}', "malformed scale request"),
    ("component.scale--trailing-garbage", scale() + "xyz", "trailing characters"),
    ("component.scale--duplicate-field", '{"component_id":"c","replicas":1,"replicas":2}', "duplicate field `replicas`"),
    ("component.scale--too-many-configs", scale(config=[f"c{i}" for i in range(100)]), "config names"),
    ("component.scale--annotation-flood", scale(annotations={f"k{i}": "v" for i in range(1000)}), "at most 64 annotations"),
    ("component.scale--bad-image-scheme", scale(image="ftp://x/c.wasm"), "invalid image"),
    ("component.scale--bad-digest", scale(image="/c.wasm@sha256:zz"), "invalid image"),
    ("component.auction--constraint-flood", j({"component_id": "c", "constraints": {f"k{i}": "v" for i in range(1000)}}), "constraints"),
    ("component.describe--id-with-space", j({"component_id": "a b"}), "invalid component id"),
    ("host.stop--timeout-string", j({"timeout_ms": "soon"}), "malformed host stop request"),
    ("host.get--page-negative", j({"page": -1}), "expected u32"),
    ("label.put--empty-key", j({"key": "", "value": "x"}), "label"),
    ("provider.start--empty-image", j({"provider_id": "p", "image": ""}), "must not be empty"),
    ("provider.start--id-with-dot", j({"provider_id": "p.q", "image": "builtin://keyvalue"}), "invalid provider id"),
    ("provider.stop--null-id", j({"provider_id": None}), "invalid type: null"),
    ("gpio.set--value-seven", j({"chip": "gpiochip0", "line": 1, "value": 7}), "must be 0 or 1"),
    ("link.put--wildcard-target", link(target_id="*"), "invalid link target"),
    ("link.put--no-interfaces", link(interfaces=[]), "interface"),
    ("link.put--bad-namespace", link(wit_namespace="Wasi!"), "invalid WIT namespace"),
    ("link.put--interface-flood", link(interfaces=[f"i{i}" for i in range(1000)]), "interfaces"),
    ("link.retarget--config-flood", j({"key": key, "target_id": "b", "target_config": [f"c{i}" for i in range(100)]}), "config names"),
    ("link.del--missing-key", j({}), "missing field `key`"),
    ("config.put--key-flood", j({"name": "x", "values": {f"k{i}": "v" for i in range(300)}}), "at most 256 keys"),
    ("config.put--megabyte-value", j({"name": "x", "values": {"k": "v" * MB}}), "config"),
    ("config.put--name-with-dot", j({"name": "a.b", "values": {}}), "invalid config name"),
    ("config.del--number-name", j({"name": 7}), "invalid type: integer `7`, expected a string"),
    ("app.deploy--path-name", j({"name": "../../etc"}), "invalid application name"),
    ("app.deploy--version-control-chars", j({"name": "app", "version": "v\u0001"}), "without control characters"),
    ("app.put--source-name-flood", j({"source_name": "s" * 10_000, "manifest": "x"}), "at most 1024 characters"),
    ("app.status--missing-name", j({}), "missing field `name`"),
    ("app.dance--unknown-verb", j({}), "unknown app request `dance`"),
    ("host.dance--unknown-request", j({}), "unknown control request host.dance"),
]
for name, body, expect in control:
    write("control", name + ".json", body, expect)

def manifest(components, name="hostile", kind="Application", api="core.oam.dev/v1beta1"):
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  components:\n{components}"

def comp(name="web", image="/c.wasm", instances="1", extra=""):
    return (f"    - name: {name}\n      type: component\n      properties:\n        image: {image}\n"
            f"      traits:\n        - type: spreadscaler\n          properties:\n            instances: {instances}\n{extra}")

laughs = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
for i in range(ord("b"), ord("j")):
    prev = chr(i - 1)
    laughs += f"{chr(i)}: &{chr(i)} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
manifests = [
    ("billion-laughs", laughs, "alias"),
    ("deep-nesting", "a: " + "[" * 10_000 + "]" * 10_000 + "\n", "recursion limit exceeded"),
    ("wrong-kind", manifest(comp(), kind="Deployment"), "kind"),
    ("wrong-api-version", manifest(comp(), api="v1"), "apiVersion"),
    ("bad-image-scheme", manifest(comp(image="ftp://x/c.wasm")), "image"),
    ("bad-image-digest", manifest(comp(image="/c.wasm@sha256:nothex")), "image"),
    ("huge-replicas", manifest(comp(instances="99999999999999999999")), "instances"),
    ("negative-replicas", manifest(comp(instances="-1")), "instances"),
    ("string-replicas", manifest(comp(instances="many")), "instances"),
    ("duplicate-names", manifest(comp() + comp()), "duplicate"),
    ("bad-app-name", manifest(comp(), name="../../etc"), "name"),
    ("missing-spec", "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: x\n", "spec"),
    ("components-not-a-list", manifest("    web: 1\n").replace("  components:\n    web: 1", "  components: 7"), "components"),
    ("unknown-trait", manifest(comp(extra="        - type: teleporter\n          properties: {}\n")), "teleporter"),
    ("link-to-nobody", manifest(comp(extra="        - type: link\n          properties:\n            target: nobody\n            namespace: wasi\n            package: keyvalue\n            interfaces: [store]\n")), "nobody"),
    ("two-documents", manifest(comp()) + "---\n" + manifest(comp()), "document"),
    ("empty", "   \n", "empty"),
    ("not-a-mapping", "- just\n- a\n- list\n", "mapping"),
    ("megabyte-name", manifest(comp(), name="n" * MB), "bytes"),
    ("nul-bytes", manifest(comp(name="w\u0000eb")), "control characters"),
    ("tab-indentation", "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n\tname: x\n", "line"),
]
for name, body, expect in manifests:
    write("manifests", name + ".yaml", body, expect)
write("manifests", "invalid-utf8.yaml", b"apiVersion: \xff\xfe\n", "UTF-8")
