#include "fixtures.h"

#include <map>
#include <utility>

namespace memtap::report::test {

namespace {

const Frame kCacheStore{"app/cache.py", 42, "store"};
const Frame kServerHandle{"app/server.py", 10, "handle"};
const Frame kWorkerRun{"app/worker.py", 7, "run"};
const Frame kMainModule{"main.py", 5, "<module>"};
const Frame kParse{"app/parse.py", 17, "parse"};
const Frame kTokenize{"app/parse.py", 88, "tokenize"};
const Frame kHelper{"app/util.py", 3, "helper"};

} // namespace

Snapshot
olderSnapshot() {
    Snapshot s;
    s.mode = "exact";
    s.sampleBytes = 0;
    s.tracedBytes = 1524096;
    s.tracedCount = 1604;
    s.traces = {
        Trace{{kCacheStore, kServerHandle, kMainModule}, 1000000, 1000},
        Trace{{kCacheStore, kWorkerRun, kMainModule}, 500000, 500},
        Trace{{kParse, kMainModule}, 20000, 100},
        Trace{{kHelper}, 4096, 4},
    };
    return s;
}

Snapshot
newerSnapshot() {
    Snapshot s;
    s.mode = "exact";
    s.sampleBytes = 0;
    s.tracedBytes = 3668708;
    s.tracedCount = 4607;
    s.traces = {
        Trace{{kCacheStore, kServerHandle, kMainModule}, 3000000, 3000},
        Trace{{kCacheStore, kWorkerRun, kMainModule}, 600000, 600},
        Trace{{kHelper}, 4096, 4},
        Trace{{kTokenize, kParse, kMainModule}, 64000, 1000},
        Trace{{}, 512, 2},
        Trace{{Frame{"weird\tdir/odd\\name\n.py", 1, "f\tx"}}, 100, 1},
    };
    return s;
}

std::optional<std::string>
fixtureSource(const std::string& file, int line) {
    static const std::map<std::pair<std::string, int>, std::string> sources = {
        {{"app/cache.py", 42}, "        self._entries.append(value)  \n"},
        {{"app/server.py", 10}, "    return cache.store(request)\n"},
        {{"app/worker.py", 7}, "\tcache.store(job.result)\n"},
        {{"main.py", 5}, "serve_forever()\n"},
        {{"app/parse.py", 88}, "\ttokens.extend(split(line))\n"},
        {{"app/parse.py", 17}, "    return tokenize(text)\n"},
        {{"app/util.py", 3}, "   \n"}, // blank after stripping: no source line
    };
    auto it = sources.find({file, line});
    if (it == sources.end()) {
        return std::nullopt;
    }
    return it->second;
}

WatchScreen
fixtureWatchScreen() {
    WatchScreen screen;
    screen.header =
        WatchHeader{4242,    "3.11.7", "sampled",          524288, 3725.4, 157286400, 12582912, 47395635,
                    3250000, "lineno", "snapshot s2 taken"};
    screen.rows = {
        WatchRow{{kCacheStore, kServerHandle, kMainModule},
                 2000000,
                 250000,
                 2000,
                 {0, 100000, 200000, 250000, 250000, 240000, 260000, 250000, 250000},
                 "self._entries.append(value)"},
        WatchRow{
            {Frame{"/home/user/.local/share/virtualenvs/service-1a2b3c/lib/python3.11/site-packages/"
                   "requests/models.py",
                   1024, "content"},
             Frame{"/home/user/.local/share/virtualenvs/service-1a2b3c/lib/python3.11/site-packages/"
                   "requests/sessions.py",
                   703, "send"},
             kServerHandle},
            600000,
            0,
            600,
            {600000},
            "self._content = b\"\".join(self.iter_content(CONTENT_CHUNK_SIZE)) or b\"\"  # long"},
        WatchRow{
            {kTokenize, kParse}, 64000, 64000, 1000, {0, 0, 0, 64000}, "tokens.extend(split(line))"},
        WatchRow{{Frame{"app/データ/処理.py", 7, "集計"}},
                 4096,
                 1024,
                 4,
                 {1024, 1024, 1024, 1024},
                 "x = '日本語テキスト' * 100  # 全角"},
        WatchRow{
            {Frame{"app/old.py", 3, "load"}}, -20000, -5000, -100, {-5000, -5000}, "buf = bytearray(n)"},
        WatchRow{{}, 512, 0, 2, {}, ""},
    };
    return screen;
}

WatchScreen
fixtureWorkersScreen() {
    WatchScreen screen;
    screen.header = WatchHeader{5600,        "3.11.2",    "exact", 0,        65, 3 * 40000000,
                                3 * 2000000, 3 * 9000000, 0,       "lineno", ""};
    screen.header.workers = {5601, 5602, 5603};
    Frame audit{"/srv/flask_app/helpers/audit.py", 18, "record"};
    Frame view{"/srv/flask_app/app.py", 31, "submit"};
    screen.rows = {
        WatchRow{{audit, view}, 3000000, 300000, 600, {0, 300000, 300000}, "cls.entries.append(entry)"},
        WatchRow{{Frame{"/srv/flask_app/app.py", 12, "index"}},
                 40000,
                 0,
                 10,
                 {40000, 0, 0},
                 "return render(page)"},
        WatchRow{{}, 2048, 0, 2, {}, ""},
    };
    screen.rows[0].perWorker = {1000000, 1200000, 800000};
    screen.rows[1].perWorker = {40000, 0, 0};
    screen.rows[2].perWorker = {0, 2048, 0};
    return screen;
}

} // namespace memtap::report::test
