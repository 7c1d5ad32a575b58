/*
 * A libcpg client for tests/compat_ipc.rs, linked with the real libcpg:
 *
 *   cpgcheck GROUP TAG COUNT PEERS [SENDERS [SIZE]]
 *
 * joins GROUP (model V1, initial totem configuration requested), waits until
 * the group has PEERS members, multicasts COUNT messages "TAG:i" (agreed),
 * and prints every callback until it has delivered SENDERS * COUNT messages
 * (SENDERS defaults to PEERS: every member runs cpgcheck). With SIZE, every
 * message is "TAG:i" padded with zero bytes to SIZE bytes, and every delivery
 * must have that size (exit 10 otherwise):
 *
 *   T <rep>.<seq> <n>             totem configuration
 *   C <members> <left> <joined>   group change (nodeid/pid lists)
 *   D <nodeid>/<pid> <payload>    delivery
 *   L <nodeid> <members>          cpg_local_get, cpg_membership_get
 *
 * then leaves and finalizes. Exit status 0 on success, 2.. on an API error.
 * The multicasts are CPG_TYPE_SAFE when the environment has
 * CPGCHECK_GUARANTEE=safe. SIZE may exceed libcpg's IPC limit (1 MiB - 1 KiB):
 * libcpg then sends each message as PARTIAL_MCAST fragments.
 * With COUNT 0 it prints "joined" once in the group and stays there until its
 * stdin ends (a member for the tools to list).
 */
#include <corosync/cpg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int members_now;
static long delivered;
static int left_self;
static unsigned int my_nodeid;
static size_t want_size;

static void print_list(const struct cpg_address *l, size_t n)
{
	size_t i;
	printf(" [");
	for (i = 0; i < n; i++)
		printf("%s%u/%u:%u", i ? "," : "", l[i].nodeid, l[i].pid, l[i].reason);
	printf("]");
}

static void deliver(cpg_handle_t h, const struct cpg_name *g, uint32_t nodeid,
		    uint32_t pid, void *msg, size_t len)
{
	printf("D %u/%u %.*s\n", nodeid, pid, (int)len, (char *)msg);
	if (want_size && len != want_size) {
		fprintf(stderr, "delivery of %zu bytes, expected %zu\n", len, want_size);
		exit(10);
	}
	delivered++;
}

static void confchg(cpg_handle_t h, const struct cpg_name *g,
		    const struct cpg_address *m, size_t nm,
		    const struct cpg_address *l, size_t nl,
		    const struct cpg_address *j, size_t nj)
{
	size_t i;
	printf("C");
	print_list(m, nm);
	print_list(l, nl);
	print_list(j, nj);
	printf("\n");
	members_now = (int)nm;
	for (i = 0; i < nl; i++)
		if (l[i].nodeid == my_nodeid && l[i].pid == (uint32_t)getpid())
			left_self = 1;
}

static void totem(cpg_handle_t h, struct cpg_ring_id ring, uint32_t n,
		  const uint32_t *list)
{
	printf("T %u.%" PRIu64 " %u\n", ring.nodeid, ring.seq, n);
}

static void dispatch_until(cpg_handle_t h, int *flag_or_null, long want)
{
	while (flag_or_null ? !*flag_or_null : delivered < want) {
		cs_error_t e = cpg_dispatch(h, CS_DISPATCH_ONE);
		if (e != CS_OK) {
			fprintf(stderr, "cpg_dispatch: %d\n", e);
			exit(3);
		}
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	cpg_model_v1_data_t model = {
		.model = CPG_MODEL_V1,
		.cpg_deliver_fn = deliver,
		.cpg_confchg_fn = confchg,
		.cpg_totem_confchg_fn = totem,
		.flags = CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF,
	};
	cpg_handle_t h;
	struct cpg_name group;
	struct cpg_address list[CPG_MEMBERS_MAX];
	int n = CPG_MEMBERS_MAX, i, peers, count, senders;
	const char *g = getenv("CPGCHECK_GUARANTEE");
	cpg_guarantee_t guarantee = g && !strcmp(g, "safe") ? CPG_TYPE_SAFE : CPG_TYPE_AGREED;
	char *buf;
	cs_error_t e;

	if (argc < 5 || argc > 7) {
		fprintf(stderr, "usage: cpgcheck GROUP TAG COUNT PEERS [SENDERS [SIZE]]\n");
		return 2;
	}
	count = atoi(argv[3]);
	peers = atoi(argv[4]);
	senders = argc >= 6 ? atoi(argv[5]) : peers;
	want_size = argc == 7 ? (size_t)atol(argv[6]) : 0;
	if (!(buf = malloc(want_size > 64 ? want_size : 64))) {
		fprintf(stderr, "out of memory\n");
		return 2;
	}
	group.length = strlen(argv[1]);
	memcpy(group.value, argv[1], group.length);

	if ((e = cpg_model_initialize(&h, CPG_MODEL_V1, (cpg_model_data_t *)&model, NULL)) != CS_OK) {
		fprintf(stderr, "cpg_model_initialize: %d\n", e);
		return 4;
	}
	if ((e = cpg_local_get(h, &my_nodeid)) != CS_OK) {
		fprintf(stderr, "cpg_local_get: %d\n", e);
		return 5;
	}
	if ((e = cpg_join(h, &group)) != CS_OK) {
		fprintf(stderr, "cpg_join: %d\n", e);
		return 6;
	}
	while (members_now < peers) {
		e = cpg_dispatch(h, CS_DISPATCH_ONE);
		if (e != CS_OK) {
			fprintf(stderr, "cpg_dispatch: %d\n", e);
			return 3;
		}
		fflush(stdout);
	}
	if (count == 0) {
		char line[64];
		while (members_now < 1) {
			if ((e = cpg_dispatch(h, CS_DISPATCH_ONE)) != CS_OK)
				return 3;
		}
		printf("joined\n");
		fflush(stdout);
		while (fgets(line, sizeof line, stdin) != NULL)
			;
		cpg_finalize(h);
		return 0;
	}
	if ((e = cpg_membership_get(h, &group, list, &n)) != CS_OK) {
		fprintf(stderr, "cpg_membership_get: %d\n", e);
		return 7;
	}
	printf("L %u", my_nodeid);
	print_list(list, n);
	printf("\n");
	for (i = 0; i < count; i++) {
		struct iovec iov;
		iov.iov_base = buf;
		iov.iov_len = snprintf(buf, 64, "%s:%d", argv[2], i);
		if (want_size) {
			memset(buf + iov.iov_len, 0, want_size - iov.iov_len);
			iov.iov_len = want_size;
		}
		/* Flow control: read callbacks until the daemon takes more. */
		while ((e = cpg_mcast_joined(h, guarantee, &iov, 1)) == CS_ERR_TRY_AGAIN) {
			if (cpg_dispatch(h, CS_DISPATCH_ALL) != CS_OK)
				return 3;
			usleep(1000);
		}
		if (e != CS_OK) {
			fprintf(stderr, "cpg_mcast_joined: %d\n", e);
			return 8;
		}
		/* A well-behaved client reads its callbacks while it sends. */
		if ((e = cpg_dispatch(h, CS_DISPATCH_ALL)) != CS_OK) {
			fprintf(stderr, "cpg_dispatch: %d\n", e);
			return 3;
		}
		fflush(stdout);
	}
	dispatch_until(h, NULL, (long)count * senders);
	if ((e = cpg_leave(h, &group)) != CS_OK) {
		fprintf(stderr, "cpg_leave: %d\n", e);
		return 9;
	}
	dispatch_until(h, &left_self, 0);
	cpg_finalize(h);
	printf("done\n");
	return 0;
}
