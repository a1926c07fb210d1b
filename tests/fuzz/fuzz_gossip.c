/* libFuzzer target for the gossip decoders and the state machine's inputs.
 *
 * Every input goes to the datagram decoder, the state-blob decoder, and
 * then to gossipOnPacket and gossipMergeState of a small node that knows
 * three members. Both wire forms are canonical, so whatever a decoder
 * accepts must re-encode to exactly the input and hold only valid values;
 * a blob the node rejects must leave its member list as it was; no input
 * may make the node break the deadline contract or emit a datagram above
 * its limit; and the fast IPv4 parser must agree with inet_pton. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gossip/codec.h"
#include "gossip/gossip.h"

static void fuzzFail(const char *what) {
    fprintf(stderr, "fuzz_gossip: %s\n", what);
    abort();
}

static void checkUpdate(const gossipUpdate *u, bool state_entry) {
    if (u->node == 0 || u->kind < GOSSIP_ALIVE || u->kind > GOSSIP_LEFT) fuzzFail("bad update");
    if (u->incarnation > GOSSIP_INCARNATION_MAX) fuzzFail("incarnation above limit");
    if (u->meta_len > GOSSIP_META_MAX) fuzzFail("meta too long");
    if ((u->kind == GOSSIP_ALIVE || state_entry) && !gossipAddrValid(&u->addr))
        fuzzFail("invalid address accepted");
    if (!state_entry && (u->kind == GOSSIP_SUSPECT || u->kind == GOSSIP_DEAD) && u->from == 0)
        fuzzFail("zero accuser");
}

static void fuzzPacketDecoder(const uint8_t *data, size_t size) {
    static gossipMsg m;
    static uint8_t out[GOSSIP_MAX_DATAGRAM_BYTES];
    gossipDropReason why;
    if (gossipDecodePacket(data, size, &m, &why) != 0) {
        if (why >= GOSSIP_DROP__COUNT) fuzzFail("bad drop reason");
        return;
    }
    if (m.h.sender == 0 || m.n_updates > GOSSIP_MAX_UPDATES_PER_PACKET) fuzzFail("bad header");
    for (size_t i = 0; i < m.n_updates; i++) checkUpdate(&m.updates[i], false);
    size_t n = gossipEncodePacket(&m, out, sizeof out);
    if (n != size || memcmp(out, data, size) != 0) fuzzFail("datagram re-encoding differs");
}

static void fuzzStateDecoder(const uint8_t *data, size_t size) {
    gossipStateReader r;
    gossipDropReason why;
    if (gossipStateOpen(&r, data, size, &why) != 0) return;
    buf b;
    bufInit(&b);
    gossipEncodeStateHeader(&b, r.sender, r.count);
    gossipUpdate e;
    uint32_t n = 0;
    while (gossipStateNext(&r, &e)) {
        checkUpdate(&e, true);
        gossipEncodeStateEntry(&b, &e);
        n++;
    }
    if (n != r.count) fuzzFail("entry count differs");
    if (b.len != size || memcmp(b.data, data, size) != 0) fuzzFail("state re-encoding differs");
    bufFree(&b);
}

static gossip *smallNode(void) {
    gossipConfig cfg;
    gossipConfigDefault(&cfg);
    gossipAddr self = {.host = "127.0.0.1", .udp_port = 7001, .tcp_port = 5001};
    gossip *g = gossipCreate(&cfg, 1, &self, (const uint8_t *)"m", 1, 5, 42, 1000);
    if (!g) fuzzFail("create failed");
    buf b;
    bufInit(&b);
    gossipEncodeStateHeader(&b, 9, 3);
    for (uint32_t id = 2; id <= 4; id++) {
        gossipUpdate u;
        memset(&u, 0, sizeof u);
        u.kind = GOSSIP_ALIVE;
        u.node = id;
        u.incarnation = 3;
        snprintf(u.addr.host, sizeof u.addr.host, "127.0.0.%u", id);
        u.addr.udp_port = (uint16_t)(7000 + id);
        gossipEncodeStateEntry(&b, &u);
    }
    if (gossipRestoreState(g, 1000, (uint8_t *)b.data, b.len) != 0) fuzzFail("restore failed");
    bufFree(&b);
    return g;
}

static void drain(gossip *g, uint64_t now) {
    gossipPacket p;
    gossipEvent ev;
    while (gossipNextPacket(g, &p)) {
        if (p.len > GOSSIP_MAX_DATAGRAM_BYTES - 41) fuzzFail("datagram above the limit");
    }
    while (gossipNextEvent(g, &ev)) {
        if (ev.at_ms != now && ev.at_ms != 1000) fuzzFail("event at an odd time");
    }
}

static void fuzzIPv4Parser(const uint8_t *data, size_t size) {
    char s[32];
    if (size >= sizeof s) return;
    memcpy(s, data, size);
    s[size] = '\0';
    uint8_t a[4], b[4];
    bool mine = gossipParseIPv4(s, a);
    if (mine != (inet_pton(AF_INET, s, b) == 1)) fuzzFail("IPv4 parser disagrees with inet_pton");
    if (mine && memcmp(a, b, 4) != 0) fuzzFail("IPv4 parser gives other bytes");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzzIPv4Parser(data, size);
    fuzzPacketDecoder(data, size);
    fuzzStateDecoder(data, size);

    gossip *g = smallNode();
    gossipAddr from = {.host = "127.0.0.2", .udp_port = 7002, .tcp_port = 5002};
    uint64_t now = 1500;
    drain(g, 1000);
    gossipOnPacket(g, now, data, size, &from);
    drain(g, now);
    size_t before = gossipMemberCount(g);
    if (gossipMergeState(g, now, data, size) != 0 && gossipMemberCount(g) != before)
        fuzzFail("rejected blob changed the member list");
    drain(g, now);
    for (int i = 0; i < 4; i++) {
        uint64_t d = gossipNextDeadline(g);
        if (d == UINT64_MAX) break;
        if (d > now) now = d;
        gossipTick(g, now);
        if (gossipNextDeadline(g) <= now) fuzzFail("deadline not advanced by a tick");
        drain(g, now);
    }
    gossipFree(g);
    return 0;
}
