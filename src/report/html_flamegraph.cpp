#include "report/html_flamegraph.h"

#include <fmt/format.h>

#include <map>

#include "report/diff.h"
#include "report/flame_tree.h"
#include "report/json.h"
#include "report/text_report.h"

namespace memtap::report {
namespace {

std::string
escapeHtml(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&#39;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

// The tree as nested arrays, [name, file, line, size, oldSize, count,
// oldCount, [children]], names and files as indices into one string table.
class TreeJson {
public:
    std::string render(const FlameNode& root) {
        JsonWriter tree;
        node(tree, root);
        JsonWriter doc;
        doc.beginObject();
        doc.key("strings");
        doc.beginArray();
        for (const auto& s : table_) {
            doc.value(s);
        }
        doc.endArray();
        doc.endObject();
        // Splice the tree in as a second member: JsonWriter places commas
        // only inside what it wrote itself.
        std::string out = doc.str();
        out.insert(out.size() - 1, ",\"tree\":" + tree.str());
        // Inside <script>, "</script>" must not appear: '<' only occurs in
        // strings here, where \u003c is the same character.
        std::string safe;
        for (char c : out) {
            safe += c == '<' ? std::string("\\u003c") : std::string(1, c);
        }
        return safe;
    }

private:
    int64_t id(const std::string& s) {
        auto [it, inserted] = ids_.try_emplace(s, static_cast<int64_t>(table_.size()));
        if (inserted) {
            table_.push_back(s);
        }
        return it->second;
    }
    void node(JsonWriter& w, const FlameNode& n) {
        w.beginArray();
        w.value(id(n.frame.function.empty() && n.frame.file.empty() ? "all" : n.frame.function));
        w.value(id(n.frame.file));
        w.value(n.frame.line);
        w.value(n.size);
        w.value(n.oldSize);
        w.value(n.count);
        w.value(n.oldCount);
        w.beginArray();
        for (const auto& child : n.children) {
            node(w, child);
        }
        w.endArray();
        w.endArray();
    }
    std::map<std::string, int64_t> ids_;
    std::vector<std::string> table_;
};

std::string
tableHtml(const std::vector<StatDiff>& stats, size_t rows) {
    std::string out = "<table id=\"stats\"><thead><tr><th>line</th><th>size</th><th>growth</th>"
                      "<th>count</th><th>count growth</th></tr></thead><tbody>\n";
    for (size_t i = 0; i < stats.size() && i < rows; ++i) {
        const StatDiff& s = stats[i];
        std::string where =
            s.key.empty() ? "<unknown>:0" : fmt::format("{}:{}", s.key[0].file, s.key[0].line);
        if (s.domain != 0) {
            where += fmt::format(" [{}]", s.domainLabel); // numpy's arrays, a native module's memory
        }
        out += fmt::format(
            "<tr><td class=\"where\">{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td>"
            "<td>{:+}</td></tr>\n",
            escapeHtml(where), escapeHtml(formatSize(static_cast<double>(s.size), false)),
            s.sizeDiff > 0 ? "grew" : (s.sizeDiff < 0 ? "shrank" : ""),
            escapeHtml(formatSize(static_cast<double>(s.sizeDiff), true)), s.count, s.countDiff);
    }
    return out + "</tbody></table>\n";
}

// Our own page script: reads the embedded tree, draws nodes wider than half
// a pixel as absolutely placed boxes, and reports errors on the page
// (#status) so a headless browser test can read them from the DOM.
constexpr const char* kStyle = R"css(
body { font: 13px/1.3 system-ui, sans-serif; margin: 12px; color: #222; }
h1 { font-size: 16px; margin: 0 0 4px; }
#controls { margin: 8px 0; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
#layout { display: flex; gap: 16px; align-items: flex-start; }
#flame { position: relative; flex: 1 1 auto; min-width: 400px; border: 1px solid #ddd; }
.node { position: absolute; height: 17px; overflow: hidden; white-space: nowrap; box-sizing: border-box;
        border: 1px solid #fff; font-size: 11px; padding: 1px 3px; cursor: pointer; }
.node.match { outline: 2px solid #a0f; z-index: 1; }
.node.thin { padding: 0; border-width: 0 1px 0 0; }
#stats { border-collapse: collapse; font-size: 12px; flex: 0 0 auto; max-width: 45%; }
#stats td, #stats th { border-bottom: 1px solid #eee; padding: 2px 6px; text-align: right; }
#stats td.where { text-align: left; word-break: break-all; }
.grew { color: #b00; } .shrank { color: #05a; }
#crumbs span { cursor: pointer; text-decoration: underline; margin-right: 4px; }
)css";

constexpr const char* kScript = R"js(
(function () {
  var status = document.getElementById('status');
  window.onerror = function (msg) { status.textContent = 'error: ' + msg; };
  var data = JSON.parse(document.getElementById('flame-data').textContent);
  var S = data.strings, top = data.tree, zoomed = top, path = [top];
  var mode = 'size', query = '';
  function fmtSize(b, sign) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], v = Math.abs(b), u = 0;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    var text = (u > 0 && v < 100 ? v.toFixed(1) : Math.round(v)) + ' ' + units[u];
    return (b < 0 ? '-' : (sign ? '+' : '')) + text;
  }
  function weight(n) { return mode === 'size' ? Math.max(n[3], 0) : Math.max(n[3] - n[4], 0); }
  function label(n) {
    var where = S[n[1]] ? ' ' + S[n[1]] + ':' + n[2] : '';
    return S[n[0]] + where;
  }
  function colour(n) {
    var grow = n[3] - n[4], base = Math.max(Math.abs(n[3]), Math.abs(n[4]), 1), r = Math.min(1, Math.abs(grow) / base);
    if (grow > 0) { return 'rgb(255,' + Math.round(220 - 170 * r) + ',' + Math.round(200 - 170 * r) + ')'; }
    if (grow < 0) { return 'rgb(' + Math.round(210 - 160 * r) + ',' + Math.round(225 - 100 * r) + ',255)'; }
    return 'rgb(238,232,213)';
  }
  function matches(n) {
    return query !== '' && (S[n[0]].toLowerCase().indexOf(query) >= 0 || S[n[1]].toLowerCase().indexOf(query) >= 0);
  }
  function render() {
    var t0 = performance.now();
    var box = document.getElementById('flame');
    box.textContent = '';
    var width = box.clientWidth || 1000, total = weight(zoomed), depthMax = 0, matched = 0, drawn = 0;
    var frag = document.createDocumentFragment();
    function draw(n, x, depth, w, inMatch) {
      if (w < 0.5) { return; }
      var hit = matches(n);
      if (hit && !inMatch) { matched += weight(n); }
      var el = document.createElement('div');
      // A box too narrow for a label keeps only its colour (and tooltip).
      el.className = 'node' + (hit ? ' match' : '') + (w < 24 ? ' thin' : '');
      el.style.left = x + 'px'; el.style.top = (depth * 18) + 'px'; el.style.width = w + 'px';
      el.style.background = colour(n);
      el.textContent = w < 24 ? '' : label(n) + ' ' + fmtSize(n[3]);
      el.title = label(n) + '\n' + fmtSize(n[3]) + ' in ' + n[5] + ' blocks (' + fmtSize(n[3] - n[4], true) +
                 ', ' + (n[5] - n[6] >= 0 ? '+' : '') + (n[5] - n[6]) + ' blocks)';
      el.onclick = function () { zoom(n); };
      frag.appendChild(el);
      drawn++;
      depthMax = Math.max(depthMax, depth);
      var cx = x;
      for (var i = 0; i < n[7].length; i++) {
        var c = n[7][i], cw = total > 0 ? weight(c) / total * width : 0;
        draw(c, cx, depth + 1, cw, inMatch || hit);
        cx += cw;
      }
    }
    draw(zoomed, 0, 0, width, false);
    box.style.height = ((depthMax + 1) * 18 + 2) + 'px';
    box.appendChild(frag);
    document.getElementById('matched').textContent = query === '' ? '' : 'matched: ' + fmtSize(matched);
    var crumbs = document.getElementById('crumbs');
    crumbs.textContent = '';
    path.forEach(function (n, i) {
      var s = document.createElement('span');
      s.textContent = S[n[0]];
      s.onclick = function () { path = path.slice(0, i + 1); zoomed = n; render(); };
      crumbs.appendChild(s);
    });
    document.getElementById('render-ms').textContent = (performance.now() - t0).toFixed(1);
    document.getElementById('drawn').textContent = String(drawn);
  }
  function zoom(n) {
    // The path from the top to n, found by search: nodes carry no parent.
    function find(at, trail) {
      if (at === n) { return trail.concat([at]); }
      for (var i = 0; i < at[7].length; i++) {
        var found = find(at[7][i], trail.concat([at]));
        if (found) { return found; }
      }
      return null;
    }
    path = find(top, []) || [top];
    zoomed = n;
    render();
  }
  document.getElementById('search').oninput = function (e) { query = e.target.value.toLowerCase(); render(); };
  document.getElementById('width-mode').onchange = function (e) { mode = e.target.value; render(); };
  document.getElementById('reset').onclick = function () { zoomed = top; path = [top]; render(); };
  window.onresize = render;
  render();
  status.textContent = 'ok';
})();
)js";

} // namespace

std::string
renderHtmlFlamegraph(const Snapshot& older, const Snapshot& newer, const HtmlReportOptions& options) {
    FlameNode root = buildFlameTree(older, newer);
    auto stats = compareSnapshots(older, newer, GroupBy::Lineno);
    bool sampled = newer.mode == "sampled";
    std::string summary = fmt::format(
        "{} &rarr; {}: traced {} in {} blocks &rarr; {} in {} blocks ({}){}",
        escapeHtml(options.oldName), escapeHtml(options.newName),
        escapeHtml(formatSize(static_cast<double>(older.tracedBytes), false)), older.tracedCount,
        escapeHtml(formatSize(static_cast<double>(newer.tracedBytes), false)), newer.tracedCount,
        escapeHtml(formatSize(static_cast<double>(newer.tracedBytes - older.tracedBytes), true)),
        sampled ? ", sampled mode: figures are estimates" : ", exact mode");
    std::string out;
    out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
    out += fmt::format("<title>memtap: {}</title>\n<style>{}</style></head><body>\n",
                       escapeHtml(options.title), kStyle);
    out += fmt::format("<h1>memtap: {}</h1>\n<div id=\"summary\">{}</div>\n", escapeHtml(options.title),
                       summary);
    out += "<div id=\"controls\"><input id=\"search\" type=\"search\" placeholder=\"search functions "
           "and files\">"
           "<label>width: <select id=\"width-mode\"><option value=\"size\">size now</option>"
           "<option value=\"growth\">growth</option></select></label><button id=\"reset\">reset "
           "zoom</button>"
           "<span id=\"matched\"></span></div>\n<div id=\"crumbs\"></div>\n";
    out += "<div id=\"layout\"><div id=\"flame\"></div>\n" + tableHtml(stats, options.tableRows) +
           "</div>\n";
    out += "<p><small>rendered <span id=\"drawn\"></span> boxes in <span id=\"render-ms\"></span> ms; "
           "status: <span id=\"status\">script did not run</span></small></p>\n";
    out +=
        "<script type=\"application/json\" id=\"flame-data\">" + TreeJson().render(root) + "</script>\n";
    out += fmt::format("<script>{}</script>\n</body></html>\n", kScript);
    return out;
}

} // namespace memtap::report
