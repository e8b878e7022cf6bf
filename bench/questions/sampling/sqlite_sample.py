# run with /usr/bin/python3 (has bs4)
import os, glob, random, re
from bs4 import BeautifulSoup, NavigableString, Comment
root='/work/corpus/sqlite'
files=sorted(glob.glob(root+'/*.html'))
sections=[]
for f in files:
    rel=os.path.relpath(f,root)
    soup=BeautifulSoup(open(f,encoding='utf-8',errors='replace').read(),'html.parser')
    for t in soup(['script','style','noscript']): t.decompose()
    cur=None; buf=[]
    def flush():
        if cur is not None:
            txt=re.sub(r'\s+',' ',' '.join(buf)).strip()
            if len(txt)>=400: sections.append((rel,cur,len(txt)))
    for el in soup.descendants:
        if getattr(el,'name',None) in ('h1','h2','h3'):
            flush(); cur=re.sub(r'\s+',' ',el.get_text(' ')).strip(); buf=[]
        elif isinstance(el,NavigableString) and not isinstance(el,Comment):
            if el.find_parent(['h1','h2','h3']) is None and cur is not None:
                buf.append(str(el))
    flush()
print(len(sections),'sections from',len(set(s[0] for s in sections)),'files')
random.seed(20261125)
samp=random.sample(sections,45)
for i,s in enumerate(samp): print(i+1,s)
