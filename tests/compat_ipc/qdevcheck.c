/*
 * A quorum device driven line by line, for tests/compat_ipc.rs, linked with
 * the real libvotequorum. It tracks votequorum (CS_TRACK_CURRENT |
 * CS_TRACK_CHANGES) to learn the ring id, as corosync-qdevice does, and reads
 * commands on stdin, answering each with one line on stdout:
 *
 *   reg NAME                      -> reg <cs_error>
 *   unreg NAME                    -> unreg <cs_error>
 *   update OLD NEW                -> update <cs_error>
 *   poll NAME CAST                -> poll <cs_error> <rep>.<seq>   (the ring last notified)
 *   pollring NAME CAST REP SEQ    -> poll <cs_error>               (a given ring)
 *   mw NAME ALLOW                 -> mw <cs_error>
 *   info NODEID                   -> info <cs_error> total=.. quorum=.. expected=..
 *                                    flags=.. qvotes=.. qname=<name>
 *   ring                          -> ring <rep>.<seq> quorate=<0|1>
 *
 * It prints "ready" once tracking is on. Callbacks are dispatched before
 * every command. Exit status 0 at end of input, 2.. on a setup error.
 */
#include <corosync/votequorum.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static votequorum_ring_id_t ring;
static uint32_t quorate;

static void quorum_fn(votequorum_handle_t h, uint64_t context, uint32_t q,
		      uint32_t n, votequorum_node_t *nodes)
{
	quorate = q;
}

static void nodelist_fn(votequorum_handle_t h, uint64_t context,
			votequorum_ring_id_t r, uint32_t n, uint32_t *nodes)
{
	ring = r;
}

int main(void)
{
	votequorum_callbacks_t cb = {
		.votequorum_quorum_notify_fn = quorum_fn,
		.votequorum_nodelist_notify_fn = nodelist_fn,
	};
	votequorum_handle_t h;
	char line[1024], cmd[32], a[512], b[512];
	unsigned int x, rep;
	uint64_t seq;
	cs_error_t e;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((e = votequorum_initialize(&h, &cb)) != CS_OK) {
		fprintf(stderr, "votequorum_initialize: %d\n", e);
		return 2;
	}
	if ((e = votequorum_trackstart(h, 0, CS_TRACK_CURRENT | CS_TRACK_CHANGES)) != CS_OK) {
		fprintf(stderr, "votequorum_trackstart: %d\n", e);
		return 3;
	}
	/* The current state comes as callbacks: wait for the ring id. */
	while (ring.seq == 0 && ring.nodeid == 0) {
		if ((e = votequorum_dispatch(h, CS_DISPATCH_ONE)) != CS_OK) {
			fprintf(stderr, "votequorum_dispatch: %d\n", e);
			return 4;
		}
	}
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin)) {
		if ((e = votequorum_dispatch(h, CS_DISPATCH_ALL)) != CS_OK) {
			fprintf(stderr, "votequorum_dispatch: %d\n", e);
			return 5;
		}
		a[0] = b[0] = 0;
		x = 0;
		seq = 0;
		if (sscanf(line, "%31s", cmd) != 1)
			continue;
		if (!strcmp(cmd, "reg") && sscanf(line, "%*s %511s", a) == 1) {
			printf("reg %d\n", votequorum_qdevice_register(h, a));
		} else if (!strcmp(cmd, "unreg") && sscanf(line, "%*s %511s", a) == 1) {
			printf("unreg %d\n", votequorum_qdevice_unregister(h, a));
		} else if (!strcmp(cmd, "update") && sscanf(line, "%*s %511s %511s", a, b) == 2) {
			printf("update %d\n", votequorum_qdevice_update(h, a, b));
		} else if (!strcmp(cmd, "poll") && sscanf(line, "%*s %511s %u", a, &x) == 2) {
			e = votequorum_qdevice_poll(h, a, x, ring);
			printf("poll %d %u.%" PRIu64 "\n", e, ring.nodeid, ring.seq);
		} else if (!strcmp(cmd, "pollring") &&
			   sscanf(line, "%*s %511s %u %u %" SCNu64, a, &x, &rep, &seq) == 4) {
			votequorum_ring_id_t r = { .nodeid = rep, .seq = seq };
			printf("poll %d\n", votequorum_qdevice_poll(h, a, x, r));
		} else if (!strcmp(cmd, "mw") && sscanf(line, "%*s %511s %u", a, &x) == 2) {
			printf("mw %d\n", votequorum_qdevice_master_wins(h, a, x));
		} else if (!strcmp(cmd, "info") && sscanf(line, "%*s %u", &x) == 1) {
			struct votequorum_info i;
			memset(&i, 0, sizeof(i));
			e = votequorum_getinfo(h, x, &i);
			printf("info %d total=%u quorum=%u expected=%u flags=%u qvotes=%u qname=%s\n",
			       e, i.total_votes, i.quorum, i.node_expected_votes, i.flags,
			       i.qdevice_votes, i.qdevice_name);
		} else if (!strcmp(cmd, "ring")) {
			printf("ring %u.%" PRIu64 " quorate=%u\n", ring.nodeid, ring.seq, quorate);
		} else {
			printf("unknown command\n");
		}
	}
	votequorum_finalize(h);
	return 0;
}
