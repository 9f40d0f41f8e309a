/* SPDX-License-Identifier: MIT */
/*
 * The module table and its dispatchers.  Dull on purpose: every hook of
 * every module, in table order; verdict hooks stop at the first module that
 * decides and record who it was.
 */
#include "config.h"
#include <stdlib.h>
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/module.h"
#include "revproxy/txn.h"
#include "../src/worker.h"

#define RP_MOD_REF_(name, NAME) [RP_MOD_##NAME] = &rp_module_##name,
const rp_module_t *const rp_modules[RP_MOD_COUNT] = { RP_MODULES(RP_MOD_REF_) };
#undef RP_MOD_REF_

const char *
rp_module_name(int id)
{
    return id >= 0 && id < RP_MOD_COUNT ? rp_modules[id]->name : "core";
}

int
rp_modules_configure(const json_t *root, rp_snapshot_t *snap, rp_errs_t *errs)
{
    int rc = 0;
    int i;
    for (i = 0; i < RP_MOD_COUNT; i++) {
        const rp_module_t *m = rp_modules[i];
        snap->mod_state[i] = NULL;
        if (m->configure != NULL && m->configure(root, snap, &snap->mod_state[i], errs) < 0) {
            snap->mod_state[i] = NULL;
            rc = -1;
        }
    }
    if (rc < 0)
        rp_modules_release(snap);
    return rc;
}

void
rp_modules_release(rp_snapshot_t *snap)
{
    for (int i = RP_MOD_COUNT - 1; i >= 0; i--) {
        const rp_module_t *m = rp_modules[i];
        if (m->release != NULL && snap->mod_state[i] != NULL)
            m->release(snap->mod_state[i]);
        snap->mod_state[i] = NULL;
    }
}

rp_verdict_t
rp_modules_on_accept(const rp_peer_t *peer, rp_snapshot_t *snap)
{
    for (int i = 0; i < RP_MOD_COUNT; i++) {
        const rp_module_t *m = rp_modules[i];
        rp_verdict_t v = m->on_accept ? m->on_accept(peer, snap->mod_state[i]) : RP_CONTINUE;
        if (v != RP_CONTINUE)
            return v;
    }
    return RP_CONTINUE;
}

#define VERDICT_DISPATCH(hook)                                                     \
    rp_verdict_t                                                                   \
    rp_modules_##hook(rp_txn_t *txn)                                               \
    {                                                                              \
        for (int i = 0; i < RP_MOD_COUNT; i++) {                                   \
            const rp_module_t *m = rp_modules[i];                                  \
            rp_verdict_t v = m->hook ? m->hook(txn, txn->snap->mod_state[i])       \
                                     : RP_CONTINUE;                                \
            if (v != RP_CONTINUE) {                                                \
                txn->decided_by = i;                                               \
                return v;                                                          \
            }                                                                      \
        }                                                                          \
        return RP_CONTINUE;                                                        \
    }

VERDICT_DISPATCH(on_request)
VERDICT_DISPATCH(select_backend)
VERDICT_DISPATCH(on_response)

void
rp_modules_on_upstream_result(rp_txn_t *txn, const rp_attempt_t *a)
{
    for (int i = 0; i < RP_MOD_COUNT; i++) {
        const rp_module_t *m = rp_modules[i];
        if (m->on_upstream_result != NULL)
            m->on_upstream_result(txn, txn->snap->mod_state[i], a);
    }
}

void
rp_modules_on_complete(const rp_txn_t *txn)
{
    for (int i = 0; i < RP_MOD_COUNT; i++) {
        const rp_module_t *m = rp_modules[i];
        if (m->on_complete != NULL)
            m->on_complete(txn, txn->snap->mod_state[i]);
    }
}

int
rp_modules_start(rp_worker_t *w, rp_snapshot_t *snap)
{
    for (int i = 0; i < RP_MOD_COUNT; i++) {
        const rp_module_t *m = rp_modules[i];
        if (m->start == NULL || m->start(w, snap->mod_state[i]) == 0)
            continue;
        rp_log(RP_LOG_ERROR, NULL, "worker %u: module %s failed to start", w->id, m->name);
        /* Undo what the modules before it did, in reverse order. */
        while (--i >= 0) {
            m = rp_modules[i];
            if (m->stop != NULL)
                m->stop(w, snap->mod_state[i]);
        }
        return -1;
    }
    return 0;
}

void
rp_modules_stop(rp_worker_t *w, rp_snapshot_t *snap)
{
    for (int i = RP_MOD_COUNT - 1; i >= 0; i--) {
        const rp_module_t *m = rp_modules[i];
        if (m->stop != NULL)
            m->stop(w, snap->mod_state[i]);
    }
}

int
rp_modules_main_start(struct event_base *base, rp_snapshot_t *snap)
{
    for (int i = 0; i < RP_MOD_COUNT; i++) {
        const rp_module_t *m = rp_modules[i];
        if (m->main_start == NULL || m->main_start(base, snap->mod_state[i]) == 0)
            continue;
        rp_log(RP_LOG_ERROR, NULL, "module %s failed to start on the main thread", m->name);
        while (--i >= 0) {
            m = rp_modules[i];
            if (m->main_stop != NULL)
                m->main_stop(snap->mod_state[i]);
        }
        return -1;
    }
    return 0;
}

void
rp_modules_main_stop(rp_snapshot_t *snap)
{
    for (int i = RP_MOD_COUNT - 1; i >= 0; i--) {
        const rp_module_t *m = rp_modules[i];
        if (m->main_stop != NULL)
            m->main_stop(snap->mod_state[i]);
    }
}

void
rp_modules_dump(const rp_snapshot_t *snap, json_t *root)
{
    for (int i = 0; i < RP_MOD_COUNT; i++) {
        const rp_module_t *m = rp_modules[i];
        if (m->dump != NULL)
            m->dump(snap->mod_state[i], root);
    }
}
