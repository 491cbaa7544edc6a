#!/usr/bin/env python3
"""Checks that no module of src/ imports (through `crate::`) one that imports it back.

Reads `crate::<module>` paths outside test modules and comments, per top-level module
(a folder counts as one), and prints every cycle; exits 1 if there is one. Run by .ci/run.
"""
import glob
import os
import re
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
mods={}
for f in glob.glob('src/**/*.rs',recursive=True):
    rel=os.path.relpath(f,'src')
    top=rel.split('/')[0].replace('.rs','')
    if top in ('main','lib'): continue
    text=open(f).read()
    # drop test modules
    k=text.find('#[cfg(test)]\nmod tests')
    if k>=0: text=text[:k]
    text=re.sub(r'//.*','',text)
    deps=set(re.findall(r'crate::([a-z_0-9]+)',text))
    # super:: within folder modules stays inside
    mods.setdefault(top,set()).update(d for d in deps if d!=top)
known=set(mods)
g={m:{d for d in ds if d in known} for m,ds in mods.items()}
# find cycles via DFS
def cycles():
    out=[]
    for start in g:
        stack=[(start,[start])]
        while stack:
            n,path=stack.pop()
            for d in g[n]:
                if d==start: out.append(path+[d])
                elif d not in path and len(path)<6: stack.append((d,path+[d]))
    return out
cs=cycles()
seen=set()
for c in cs:
    key=frozenset(c)
    if key in seen: continue
    seen.add(key); print(' -> '.join(c))
print(f"{len(g)} modules, {len(seen)} import cycles")
sys.exit(1 if seen else 0)
