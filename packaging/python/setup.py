# Builds the anonauth wheel from a staging directory made by
# packaging/build.sh wheel (anonauth/__init__.py with the version filled in,
# anonauth/anonauth.so of one platform). The .so is loaded by SQLite, not by
# Python, so the wheel is for any Python 3 (py3-none) on one platform, whose
# tag build.sh passes with --plat-name (linux_x86_64, linux_aarch64; not
# manylinux: the .so is built on Debian 12 against its libraries).
import os
from setuptools import Distribution, setup
from wheel.bdist_wheel import bdist_wheel


class BinaryDistribution(Distribution):
    """Has a platform binary: installed into platlib, not purelib."""
    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    def get_tag(self):
        return "py3", "none", self.plat_name.replace("-", "_").replace(".", "_")


with open("README.md", encoding="utf-8") as f:
    readme = f.read()

setup(
    name="anonauth",
    version=os.environ["ANONAUTH_VERSION"],
    description="An authentication layer inside SQLite: anonymous users and sessions, "
                "accounts, CAPTCHA, rate limits (the SQLite extension, for sqlite3)",
    long_description=readme,
    long_description_content_type="text/markdown",
    packages=["anonauth"],
    package_data={"anonauth": ["anonauth.so"]},
    python_requires=">=3.7",
    zip_safe=False,
    distclass=BinaryDistribution,
    cmdclass={"bdist_wheel": PlatformWheel},
)
