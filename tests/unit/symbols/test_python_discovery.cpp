#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "spawned_process.h"
#include "symbols/python_discovery.h"
#include "test_pythons.h"

using memtap::test::SpawnedProcess;
using namespace memtap::symbols;

namespace {

// "3.11.7" -> 3, 11; "debian-python3.11" -> 3, 11.
void
expectedVersion(const std::string& name, int& major, int& minor) {
    std::string digits = name.substr(name.find_first_of("0123456789"));
    major = std::stoi(digits);
    minor = std::stoi(digits.substr(digits.find('.') + 1));
}

PythonTarget
discoverIn(pid_t pid) {
    ProcessModules modules = ProcessModules::readOrThrow(pid);
    return discoverPythonOrThrow(modules);
}

// A scratch directory removed on scope exit.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char pattern[] = "/tmp/memtap-symbols-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

} // namespace

TEST_CASE("version parsing helpers", "[python]") {
    int major = 0;
    int minor = 0;
    CHECK(detail::formatVersionHex(0x030b07f0, major, minor) == "3.11.7");
    CHECK((major == 3 && minor == 11));
    CHECK(detail::formatVersionHex(0x030e00c1, major, minor) == "3.14.0rc1");
    CHECK(detail::formatVersionHex(0x030d00a3, major, minor) == "3.13.0a3");

    CHECK(detail::versionFromFileName("/x/lib/libpython3.11.so.1.0", major, minor));
    CHECK((major == 3 && minor == 11));
    CHECK(detail::versionFromFileName("/x/lib/libpython3.6m.so.1.0", major, minor));
    CHECK((major == 3 && minor == 6));
    CHECK(detail::versionFromFileName("/usr/bin/python3.13", major, minor));
    CHECK((major == 3 && minor == 13));
    CHECK(detail::versionFromFileName("python2.7", major, minor));
    CHECK((major == 2 && minor == 7));
    CHECK_FALSE(detail::versionFromFileName("/usr/bin/python3", major, minor));
    CHECK_FALSE(detail::versionFromFileName("/usr/lib/libpythonesque.so", major, minor));

    CHECK(detail::parseVersionString("3.9.18", major, minor));
    CHECK((major == 3 && minor == 9));
    CHECK(detail::parseVersionString("3.13.0rc2", major, minor));
    CHECK(detail::parseVersionString("2.7.18+", major, minor));
    CHECK_FALSE(detail::parseVersionString("3.9", major, minor));
    CHECK_FALSE(detail::parseVersionString("%.80s (%.80s) %.80s", major, minor));
}

TEST_CASE("discoverPythonOrThrow on every test interpreter", "[python]") {
    REQUIRE_FALSE(testPythons().empty());
    for (const TestPython& python : testPythons()) {
        std::string name = python.name;
        INFO(name << " at " << python.path);
        SpawnedProcess child(memtap::test::parkedPython(python.path));
        REQUIRE(child.waitReady());
        ProcessModules modules = ProcessModules::readOrThrow(child.pid());
        PythonTarget target = discoverPythonOrThrow(modules);
        int major = 0;
        int minor = 0;
        expectedVersion(name, major, minor);
        CHECK(target.major == major);
        CHECK(target.minor == minor);
        bool debian = name.starts_with("debian-");
        if (debian) {
            CHECK(target.isMainExecutable);
            CHECK(target.module.path == modules.mainExecutable()->path);
            CHECK(target.version.starts_with(fmt::format("{}.{}.", major, minor)));
        } else {
            // pyenv builds: shared libpython, exact version from Py_Version or PY_VERSION.
            CHECK_FALSE(target.isMainExecutable);
            CHECK(target.module.path.find("libpython") != std::string::npos);
            CHECK(target.version == name);
        }
        // The address the injector will call is really in the live module.
        auto setAllocator = modules.findSymbol(target.module, "PyMem_SetAllocator");
        REQUIRE(setAllocator);
        CHECK(target.module.start <= *setAllocator);
        CHECK(*setAllocator < target.module.end);
    }
}

TEST_CASE("discoverPythonOrThrow finds a renamed interpreter by its C-API", "[python]") {
    const std::filesystem::path source = "/usr/bin/python3.11";
    if (!std::filesystem::exists(source)) {
        WARN("no " << source);
        return;
    }
    TempDir dir;
    std::filesystem::path renamed = dir.path / "my-server";
    std::filesystem::copy_file(source, renamed);
    SpawnedProcess child(memtap::test::parkedPython(renamed.string()));
    REQUIRE(child.waitReady());
    PythonTarget target = discoverIn(child.pid());
    CHECK(target.isMainExecutable);
    CHECK(target.major == 3);
    CHECK(target.minor == 11);
    CHECK(target.version.starts_with("3.11."));
}

TEST_CASE("discoverPythonOrThrow finds libpython inside uWSGI", "[python]") {
    if (::access("/usr/bin/uwsgi", X_OK) != 0 ||
        ::access("/usr/lib/uwsgi/plugins/python3_plugin.so", R_OK) != 0) {
        WARN("uWSGI with the python3 plugin is not installed");
        return;
    }
    TempDir dir;
    {
        std::ofstream app(dir.path / "app.py");
        app << "import sys\n"
               "sys.stdout.write('ready\\n')\n"
               "sys.stdout.flush()\n"
               "def application(environ, start_response):\n"
               "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
               "    return [b'ok']\n";
    }
    // Loopback only, an ephemeral port, one process (no master: no forks).
    SpawnedProcess child({"/usr/bin/uwsgi", "--plugin", "python3", "--http-socket", "127.0.0.1:0",
                          "--wsgi-file", (dir.path / "app.py").string()},
                         /*mergeStderr=*/true);
    REQUIRE(child.waitReady());
    ProcessModules modules = ProcessModules::readOrThrow(child.pid());
    PythonTarget target = discoverPythonOrThrow(modules);
    CHECK_FALSE(target.isMainExecutable);
    CHECK(target.module.path.find("libpython3.") != std::string::npos);
    CHECK(target.major == 3);
    CHECK(target.version.starts_with(fmt::format("3.{}.", target.minor)));
}

TEST_CASE("discoverPythonOrThrow rejects Python 2.7", "[python]") {
    const std::string python = "/root/.pyenv/versions/2.7.18/bin/python";
    if (::access(python.c_str(), X_OK) != 0) {
        WARN("no " << python);
        return;
    }
    SpawnedProcess child(memtap::test::parkedPython(python));
    REQUIRE(child.waitReady());
    try {
        discoverIn(child.pid());
        FAIL("expected an error");
    } catch (const memtap::Error& e) {
        CHECK(e.code() == memtap::ExitCode::NotSupported);
        CHECK(
            std::string(e.what()) ==
            fmt::format("process {} runs Python 2.7; memtap supports CPython 3.6 to 3.15", child.pid()));
        CHECK_FALSE(e.hint().empty());
    }
}

TEST_CASE("discoverPythonOrThrow rejects a process without Python", "[python]") {
    // exec keeps the PID: the process we inspect is sleep itself.
    SpawnedProcess child({"/bin/sh", "-c", "echo ready; exec sleep 100"});
    REQUIRE(child.waitReady());
    // sh may still be exec'ing sleep right after "ready": wait (bounded) for it.
    for (int i = 0; i < 200; ++i) {
        ProcessModules modules = ProcessModules::readOrThrow(child.pid());
        if (modules.mainExecutable() != nullptr && modules.mainExecutable()->path.ends_with("/sleep")) {
            break;
        }
        ::usleep(10000);
    }
    try {
        discoverIn(child.pid());
        FAIL("expected an error");
    } catch (const memtap::Error& e) {
        CHECK(e.code() == memtap::ExitCode::NotSupported);
        CHECK(std::string(e.what()) ==
              fmt::format("process {} is not a Python process: no CPython runtime is mapped into it",
                          child.pid()));
    }
}

TEST_CASE("discoverPythonOrThrow accepts the 3.13 GIL-build fixture", "[python]") {
    SpawnedProcess child({MEMTAP_FAKE_PYTHON_GIL});
    REQUIRE(child.waitReady());
    PythonTarget target = discoverIn(child.pid());
    CHECK(target.isMainExecutable);
    CHECK(target.version == "3.13.0");
}

TEST_CASE("discoverPythonOrThrow refuses free-threaded builds", "[python]") {
    // No free-threaded interpreter is installed here: fake_python.c stands in,
    // once with the Py_GIL_DISABLED-only export, once with the debug offsets'
    // free_threaded flag.
    for (const char* path : {MEMTAP_FAKE_PYTHON_FT_SYMBOL, MEMTAP_FAKE_PYTHON_FT_DEBUG_OFFSETS}) {
        INFO(path);
        SpawnedProcess child({path});
        REQUIRE(child.waitReady());
        try {
            discoverIn(child.pid());
            FAIL("expected an error");
        } catch (const memtap::Error& e) {
            CHECK(e.code() == memtap::ExitCode::NotSupported);
            std::string what = e.what();
            CHECK(what.starts_with(fmt::format(
                "process {} runs a free-threaded CPython 3.13.0 (Py_GIL_DISABLED", child.pid())));
            CHECK(what.find('\n') == std::string::npos);
            CHECK_FALSE(e.hint().empty());
        }
    }
}

TEST_CASE("discoverPythonOrThrow degrades on a newer CPython with _Py_DebugOffsets", "[python]") {
    // "3.16": newer than every table. With a cookie naming it: attached, with a
    // note naming the version; without one: refused like any unknown version.
    {
        SpawnedProcess child({MEMTAP_FAKE_PYTHON_316});
        REQUIRE(child.waitReady());
        PythonTarget target = discoverIn(child.pid());
        CHECK(target.minor == 16);
        CHECK(target.version == "3.16.0");
        CHECK(target.note.starts_with("CPython 3.16.0 is newer than memtap knows (3.6 to 3.15)"));
        CHECK(target.note.find('\n') == std::string::npos);
    }
    {
        SpawnedProcess child({MEMTAP_FAKE_PYTHON_316_NO_COOKIE});
        REQUIRE(child.waitReady());
        try {
            discoverIn(child.pid());
            FAIL("expected an error");
        } catch (const memtap::Error& e) {
            CHECK(e.code() == memtap::ExitCode::NotSupported);
            CHECK(std::string(e.what()) ==
                  fmt::format("process {} runs Python 3.16.0; memtap supports CPython 3.6 to 3.15",
                              child.pid()));
        }
    }
}
