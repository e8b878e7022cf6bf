import os, re, random, glob
root='/work/corpus/pydocs'
files=sorted(glob.glob(root+'/**/*.rst.txt',recursive=True))
ul=re.compile(r'^([=\-~^"\'`#*+.:_])\1{2,}\s*$')
sections=[]
for f in files:
    rel=os.path.relpath(f,root)
    if rel=='whatsnew/changelog.rst.txt': continue
    lines=open(f,encoding='utf-8').read().split('\n')
    heads=[]
    for i in range(1,len(lines)):
        if ul.match(lines[i]) and lines[i-1].strip() and not ul.match(lines[i-1]) and len(lines[i].rstrip())>=len(lines[i-1].rstrip())-1:
            # title line index i-1; skip overline handled: if lines[i-2] is same char overline, fine
            heads.append(i-1)
    for k,h in enumerate(heads):
        start=h+2
        end=heads[k+1]-1 if k+1<len(heads) else len(lines)
        # remove trailing overline line
        body='\n'.join(lines[start:end])
        if k+1<len(heads) and heads[k+1]-2>=0 and ul.match(lines[heads[k+1]-1]): pass
        if len(body.strip())>=400:
            sections.append((rel,lines[h].strip(),h+1,len(body)))
print(len(sections))
random.seed(20261125)
samp=random.sample(sections,60)
for i,s in enumerate(samp): print(i+1,s)
