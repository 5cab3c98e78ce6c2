// Installing and removing the allocator hooks on the three PyMem domains.
//
// Both run WITHOUT the GIL (see hooks.cpp for why that is safe).
#ifndef MEMTAP_AGENT_HOOKS_H
#define MEMTAP_AGENT_HOOKS_H

#include "agent/python_api.h"

namespace memtap_agent {

// Wraps raw, mem and obj. Idempotent: a domain whose current allocator is
// still our hook (a dormant agent left it in pass-through) is not wrapped
// again. The hooks forward only; recording is switched on by the engine.
void installHooks(const PythonApi& api) noexcept;

// Puts back the original allocator of each domain whose current allocator is
// still ours; a domain that someone wrapped after us keeps our hook, which
// stays in pass-through. Returns true if every domain was restored.
bool uninstallHooks(const PythonApi& api) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_HOOKS_H
