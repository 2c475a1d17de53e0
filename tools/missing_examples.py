import importlib, inspect, sys, typing
sys.path.insert(0, "tools")
from api_reference import PACKAGES
seen = set(); miss = []
for m in PACKAGES:
    mod = importlib.import_module(m)
    for n in mod.__all__:
        o = getattr(mod, n)
        if id(o) in seen or not (inspect.isclass(o) or inspect.isfunction(o) or callable(o)) or typing.get_origin(o) is not None:
            continue
        seen.add(id(o))
        d = inspect.getdoc(o) or ""
        if "Examples:" not in d:
            f = inspect.getsourcefile(o) if (inspect.isclass(o) or inspect.isfunction(o)) else "?"
            miss.append((f.replace("/work/main/", ""), n))
for f, n in sorted(miss): print(f, n)
print(len(miss), file=sys.stderr)
