"""Package build: compiles the gettext catalogs (.po) into the .mo files the programs read."""

from pathlib import Path

from setuptools import setup  # type: ignore[import-untyped]
from setuptools.command.build_py import build_py  # type: ignore[import-untyped]


class BuildWithCatalogs(build_py):  # type: ignore[misc]
    """build_py, then each catalog shipped as .po gets its compiled .mo beside it in the build."""

    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in Path(self.build_lib).glob("*/web/locale/*/LC_MESSAGES/*.po"):
            with po.open("rb") as source, po.with_suffix(".mo").open("wb") as compiled:
                write_mo(compiled, read_po(source))


setup(cmdclass={"build_py": BuildWithCatalogs})
