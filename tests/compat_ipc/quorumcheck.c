/*
 * A libquorum model V1 client for tests/compat_ipc.rs, linked with the real
 * libquorum:
 *
 *   quorumcheck N
 *
 * tracks quorum (CS_TRACK_CURRENT | CS_TRACK_CHANGES) and prints each callback
 * until it has seen N node list notifications:
 *
 *   N <rep>.<seq> members=[..] joined=[..] left=[..]   node list
 *   Q <rep>.<seq> quorate=<0|1> members=[..]          quorum
 *
 * It prints "tracking" once tracking is on. Exit status 0, 2.. on an API error.
 */
#include <corosync/quorum.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static int nodelists;

static void list(const char *name, uint32_t n, const uint32_t *l)
{
	uint32_t i;
	printf(" %s=[", name);
	for (i = 0; i < n; i++)
		printf("%s%u", i ? "," : "", l[i]);
	printf("]");
}

static void quorum_fn(quorum_handle_t h, uint32_t quorate, struct quorum_ring_id ring,
		      uint32_t n, const uint32_t *members)
{
	printf("Q %u.%" PRIu64 " quorate=%u", ring.nodeid, ring.seq, quorate);
	list("members", n, members);
	printf("\n");
	fflush(stdout);
}

static void nodelist_fn(quorum_handle_t h, struct quorum_ring_id ring,
			uint32_t nm, const uint32_t *m, uint32_t nj, const uint32_t *j,
			uint32_t nl, const uint32_t *l)
{
	printf("N %u.%" PRIu64, ring.nodeid, ring.seq);
	list("members", nm, m);
	list("joined", nj, j);
	list("left", nl, l);
	printf("\n");
	fflush(stdout);
	nodelists++;
}

int main(int argc, char **argv)
{
	quorum_model_v1_data_t model = {
		.model = QUORUM_MODEL_V1,
		.quorum_notify_fn = quorum_fn,
		.nodelist_notify_fn = nodelist_fn,
	};
	quorum_handle_t h;
	uint32_t type;
	cs_error_t e;
	int want;

	if (argc != 2) {
		fprintf(stderr, "usage: quorumcheck N\n");
		return 2;
	}
	want = atoi(argv[1]);
	if ((e = quorum_model_initialize(&h, QUORUM_MODEL_V1, (quorum_model_data_t *)&model, &type, NULL)) != CS_OK) {
		fprintf(stderr, "quorum_model_initialize: %d\n", e);
		return 3;
	}
	if (type != QUORUM_SET) {
		fprintf(stderr, "quorum type %u\n", type);
		return 4;
	}
	if ((e = quorum_trackstart(h, CS_TRACK_CURRENT | CS_TRACK_CHANGES)) != CS_OK) {
		fprintf(stderr, "quorum_trackstart: %d\n", e);
		return 5;
	}
	printf("tracking\n");
	fflush(stdout);
	while (nodelists < want) {
		if ((e = quorum_dispatch(h, CS_DISPATCH_ONE)) != CS_OK) {
			fprintf(stderr, "quorum_dispatch: %d\n", e);
			return 6;
		}
	}
	quorum_finalize(h);
	return 0;
}
