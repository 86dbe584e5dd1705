"""xpiler: a transcompiler for tensor kernels, driven from SCons."""

__version__ = "0.1.0"


def scons_toolpath() -> str:
    """The directory holding the SCons tool, for ``env.Tool("xpiler", toolpath=[...])``.

    It is ``site_scons/site_tools`` of the checkout the package comes from (the supported
    install is editable, see pyproject.toml).
    """
    from .paths import repo_root

    return str(repo_root() / "site_scons" / "site_tools")
