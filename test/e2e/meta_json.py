#!/usr/bin/python3
"""META.json is valid PGXN metadata for this version (scripts/check_meta.py), and the
checker itself rejects what it must: each mutation below has to be refused."""
import copy
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
CHECK = os.path.join(ROOT, 'scripts', 'check_meta.py')


def run(meta):
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as f:
        json.dump(meta, f)
    try:
        r = subprocess.run([sys.executable, CHECK, f.name], capture_output=True, text=True)
        return r.returncode, r.stdout.strip()
    finally:
        os.unlink(f.name)


def main():
    meta = json.load(open(os.path.join(ROOT, 'META.json')))
    rc, out = run(meta)
    print(out)
    if rc != 0:
        return 1
    mutations = {
        'no name': lambda m: m.pop('name'),
        'bad version': lambda m: m.__setitem__('version', '0.2'),
        'version not the control file\'s': lambda m: m.__setitem__('version', '9.9.9'),
        'unknown license': lambda m: m.__setitem__('license', 'beerware'),
        'provides without file': lambda m: m['provides']['meter'].pop('file'),
        'wrong meta-spec': lambda m: m['meta-spec'].__setitem__('version', '2.0.0'),
        'unknown key': lambda m: m.__setitem__('colour', 'blue'),
        'bad release_status': lambda m: m.__setitem__('release_status', 'beta'),
        'bad prereq phase': lambda m: m['prereqs'].__setitem__('deploy', {}),
    }
    failed = 0
    for name, mutate in mutations.items():
        m = copy.deepcopy(meta)
        mutate(m)
        rc, out = run(m)
        if rc == 0:
            print('not refused: %s' % name)
            failed += 1
    print('%d mutations refused' % (len(mutations) - failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
