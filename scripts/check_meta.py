#!/usr/bin/python3
"""Validate META.json against the PGXN Meta Spec 1.0.0 (https://pgxn.org/spec/), offline,
and against the project itself: the version in META.json is meter.control's, the file it
names is the install script `make` builds, and CHANGELOG.md has a section for it.
Prints one line per problem; exits 1 when there is one."""
import json
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
SEMVER = re.compile(r'^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z][0-9A-Za-z-]*)?$')
# Version ranges in prereqs: a version, or comparisons joined by commas.
RANGE = re.compile(r'^\s*(?:(?:==|!=|>=|<=|>|<)\s*)?\d+(?:\.\d+){0,2}(?:-[0-9A-Za-z-]+)?\s*$')
LICENSES = {'agpl_3', 'apache_1_1', 'apache_2_0', 'artistic_1', 'artistic_2', 'bsd', 'freebsd',
            'gfdl_1_2', 'gfdl_1_3', 'gpl_1', 'gpl_2', 'gpl_3', 'lgpl_2_1', 'lgpl_3_0', 'mit',
            'mozilla_1_0', 'mozilla_1_1', 'openssl', 'perl_5', 'postgresql', 'qpl_1_0', 'ssleay',
            'sun', 'zlib', 'open_source', 'restricted', 'unrestricted', 'unknown'}
REQUIRED = ('name', 'abstract', 'version', 'maintainer', 'license', 'provides', 'meta-spec')
OPTIONAL = ('description', 'generated_by', 'tags', 'no_index', 'prereqs', 'release_status',
            'resources')
PHASES = ('configure', 'build', 'test', 'runtime', 'develop')
RELATIONS = ('requires', 'recommends', 'suggests', 'conflicts')

problems = []


def bad(msg):
    problems.append(msg)


def is_str(v):
    return isinstance(v, str) and v.strip() != ''


def check_spec(meta):
    for k in REQUIRED:
        if k not in meta:
            bad('missing required key "%s"' % k)
    for k in meta:
        if k not in REQUIRED and k not in OPTIONAL and not k.lower().startswith('x_'):
            bad('unknown key "%s" (custom keys start with x_)' % k)
    name = meta.get('name')
    if not is_str(name) or len(name) < 2 or re.search(r'[\s/\\:]', name):
        bad('name must be 2+ characters without whitespace, /, \\ or :')
    if not is_str(meta.get('abstract')):
        bad('abstract must be a non-empty string')
    if not (isinstance(meta.get('version'), str) and SEMVER.match(meta['version'])):
        bad('version must be a semantic version')
    m = meta.get('maintainer')
    if not (is_str(m) or (isinstance(m, list) and m and all(is_str(x) for x in m))):
        bad('maintainer must be a string or a non-empty array of strings')
    lic = meta.get('license')
    if isinstance(lic, str):
        if lic not in LICENSES:
            bad('license "%s" is not a PGXN license string' % lic)
    elif isinstance(lic, list):
        if not lic or any(x not in LICENSES for x in lic):
            bad('license array must hold PGXN license strings')
    elif isinstance(lic, dict):
        if not lic or not all(is_str(v) for v in lic.values()):
            bad('license object must map names to URLs')
    else:
        bad('license must be a string, an array or an object')
    prov = meta.get('provides')
    if not isinstance(prov, dict) or not prov:
        bad('provides must be a non-empty object')
    else:
        for ext, p in prov.items():
            if not isinstance(p, dict):
                bad('provides.%s must be an object' % ext)
                continue
            for k in p:
                if k not in ('file', 'version', 'abstract', 'docfile') and not k.lower().startswith('x_'):
                    bad('provides.%s has unknown key "%s"' % (ext, k))
            if not is_str(p.get('file')):
                bad('provides.%s.file is required' % ext)
            if not (isinstance(p.get('version'), str) and SEMVER.match(p['version'])):
                bad('provides.%s.version must be a semantic version' % ext)
    ms = meta.get('meta-spec')
    if not isinstance(ms, dict) or ms.get('version') != '1.0.0':
        bad('meta-spec.version must be "1.0.0"')
    if 'release_status' in meta and meta['release_status'] not in ('stable', 'testing', 'unstable'):
        bad('release_status must be stable, testing or unstable')
    if 'tags' in meta and not (isinstance(meta['tags'], list) and
                               all(is_str(t) and len(t) < 256 for t in meta['tags'])):
        bad('tags must be an array of strings shorter than 256 characters')
    if 'no_index' in meta:
        ni = meta['no_index']
        if not isinstance(ni, dict) or any(k not in ('file', 'directory') for k in ni) or \
                any(not isinstance(v, list) or not all(is_str(x) for x in v) for v in ni.values()):
            bad('no_index must map file/directory to arrays of strings')
    if 'prereqs' in meta:
        pr = meta['prereqs']
        if not isinstance(pr, dict):
            bad('prereqs must be an object')
        else:
            for phase, rels in pr.items():
                if phase not in PHASES or not isinstance(rels, dict):
                    bad('prereqs.%s is not a phase object' % phase)
                    continue
                for rel, deps in rels.items():
                    if rel not in RELATIONS or not isinstance(deps, dict):
                        bad('prereqs.%s.%s is not a relation object' % (phase, rel))
                        continue
                    for dep, ver in deps.items():
                        ok = (isinstance(ver, int) and ver == 0) or (
                            isinstance(ver, str) and all(RANGE.match(x) for x in ver.split(',')))
                        if not ok:
                            bad('prereqs.%s.%s.%s: bad version range %r' % (phase, rel, dep, ver))


def check_project(meta):
    control = open(os.path.join(ROOT, 'meter.control')).read()
    v = re.search(r"default_version = '([^']+)'", control).group(1)
    if meta.get('version') != v:
        bad('META.json version %s is not meter.control\'s %s' % (meta.get('version'), v))
    p = meta.get('provides', {}).get('meter', {})
    if p.get('version') != v:
        bad('provides.meter.version is not %s' % v)
    if p.get('file') != 'sql/meter--%s.sql' % v:
        bad('provides.meter.file is not the install script of %s' % v)
    if not os.path.exists(os.path.join(ROOT, p.get('docfile', 'README.md'))):
        bad('docfile does not exist')
    changelog = open(os.path.join(ROOT, 'CHANGELOG.md')).read()
    if not re.search(r'^## \[?%s\]?' % re.escape(v), changelog, re.M):
        bad('CHANGELOG.md has no section for %s' % v)


def main():
    try:
        path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'META.json')
        meta = json.load(open(path))
    except (OSError, ValueError) as e:
        print('META.json: %s' % e)
        return 1
    check_spec(meta)
    check_project(meta)
    for p in problems:
        print('META.json: ' + p)
    if not problems:
        print('META.json: valid (PGXN Meta Spec 1.0.0), version %s' % meta['version'])
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
