#!/usr/bin/env python3
"""Which code of a running trellis-host is resident: the present pages of its executable's
text mapping (from /proc/PID/pagemap, which needs root) matched to the executable's symbols
(`nm -C`), summed by crate. Used for the footprint figures in the README.

    scripts/text-resident.py PID target/release/trellis-host
"""
import sys, struct, subprocess, re, bisect, collections
if len(sys.argv) != 3:
    sys.exit(__doc__)
pid=int(sys.argv[1]); exe=sys.argv[2]
maps=open(f"/proc/{pid}/maps").read().splitlines()
# nm symbols (virtual addresses in the ELF); find load bias from the r-xp mapping of exe
syms=[]
out=subprocess.run(["nm","-C","--defined-only",exe],capture_output=True,text=True).stdout
for line in out.splitlines():
    p=line.split(" ",2)
    if len(p)<3 or p[1] not in "tTwW": continue
    syms.append((int(p[0],16),p[2]))
syms.sort()
addrs=[a for a,_ in syms]
# ELF text segment vaddr/offset
ph=subprocess.run(["readelf","-lW",exe],capture_output=True,text=True).stdout
loads=[l.split() for l in ph.splitlines() if l.strip().startswith("LOAD")]
pm=open(f"/proc/{pid}/pagemap","rb")
res=collections.Counter(); total=0
for m in maps:
    f=m.split()
    if len(f)<6 or not f[5].endswith("trellis-host") or f[1]!="r-xp": continue
    lo,hi=[int(x,16) for x in f[0].split("-")]; off=int(f[2],16)
    # find LOAD segment with this offset
    seg=[l for l in loads if int(l[1],16)<=off< int(l[1],16)+int(l[4],16)][0]
    bias=lo-(int(seg[2],16)+(off-int(seg[1],16)))
    for va in range(lo,hi,4096):
        pm.seek(va//4096*8); e=struct.unpack("<Q",pm.read(8))[0]
        if e>>63 & 1:
            total+=1
            elf=va-bias
            i=bisect.bisect_right(addrs,elf)-1
            name=syms[i][1] if i>=0 else "?"
            name=re.sub(r"^<","",name)
            crate=name.split("::")[0].lstrip("<&*(").split(" ")[0]
            res[crate]+=1
print(f"resident text pages: {total} ({total*4/1024:.1f} MiB)")
for c,n in res.most_common(25): print(f"{n*4:7d} KiB  {c}")
