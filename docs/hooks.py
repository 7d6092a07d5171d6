"""mkdocs hooks (mkdocs.yml): README.md, BENCHMARKS.md and RELIABILITY.md, which live at the
repository's root where GitHub shows them, become pages of the site, and links between the
root and docs/ are rewritten to the site's names. A link to another file of the repository
(LICENSE, a source file) becomes its text: the site holds only the pages. A link to a file that
does not exist is left as it is, for mkdocs to report (and `--strict` to fail)."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT_PAGES = {
    "README.md": "index.md",
    "BENCHMARKS.md": "benchmarks.md",
    "RELIABILITY.md": "reliability.md",
}
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def _root(config) -> Path:
    return Path(config.config_file_path).parent


def on_files(files, config):
    for source, page in ROOT_PAGES.items():
        files.append(File.generated(config, page, abs_src_path=str(_root(config) / source)))
    return files


def on_page_markdown(markdown, page, config, files):
    root = _root(config)
    here = "" if page.file.src_uri in ROOT_PAGES.values() else "docs"

    def rewrite(match: re.Match) -> str:
        image, label, target = match.groups()
        if "://" in target or target.startswith(("#", "mailto:")):
            return match.group(0)
        path, hash_, anchor = target.partition("#")
        in_repo = posixpath.normpath(posixpath.join(here, path))
        if in_repo in ROOT_PAGES:
            site_path = ROOT_PAGES[in_repo]
        elif in_repo.startswith("docs/"):
            site_path = in_repo.removeprefix("docs/")
        elif (root / in_repo).exists():
            return label  # a repository file that is not a page
        else:
            return match.group(0)
        return f"{image}[{label}]({site_path}{hash_}{anchor})"

    return LINK.sub(rewrite, markdown)
