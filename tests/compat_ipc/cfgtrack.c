/*
 * A cfg shutdown tracker for tests/compat_rig.rs, linked with the real libcfg,
 * registered as Pacemaker's pacemakerd registers:
 *
 *   cfgtrack yes|no|silent
 *
 * calls corosync_cfg_trackstart, prints "tracking", then answers every
 * shutdown callback with corosync_cfg_replyto_shutdown(YES or NO) — or, with
 * "silent", not at all — printing
 *
 *   asked <flags>        a shutdown callback (0 request, 1 regardless, 2 immediate)
 *   replied <cs_error>   the answer's result
 *   gone <cs_error>      the daemon closed the connection (then exits 0)
 *
 * It finalizes and exits 0 when its stdin closes; 1 on an API error.
 */
#include <corosync/cfg.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

static const char *answer;

static void on_shutdown(corosync_cfg_handle_t h, corosync_cfg_shutdown_flags_t flags)
{
	cs_error_t rc;

	printf("asked %d\n", (int)flags);
	fflush(stdout);
	if (strcmp(answer, "silent") == 0)
		return;
	rc = corosync_cfg_replyto_shutdown(h, strcmp(answer, "yes") == 0 ?
					   COROSYNC_CFG_SHUTDOWN_FLAG_YES :
					   COROSYNC_CFG_SHUTDOWN_FLAG_NO);
	printf("replied %d\n", (int)rc);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	corosync_cfg_handle_t h;
	corosync_cfg_callbacks_t callbacks = { .corosync_cfg_shutdown_callback = on_shutdown };
	struct pollfd fds[2];
	int32_t fd;
	cs_error_t rc;

	if (argc != 2) {
		fprintf(stderr, "usage: cfgtrack yes|no|silent\n");
		return 1;
	}
	answer = argv[1];
	rc = corosync_cfg_initialize(&h, &callbacks);
	if (rc != CS_OK) {
		fprintf(stderr, "corosync_cfg_initialize: %d\n", rc);
		return 1;
	}
	rc = corosync_cfg_trackstart(h, 0);
	if (rc != CS_OK) {
		fprintf(stderr, "corosync_cfg_trackstart: %d\n", rc);
		return 1;
	}
	if (corosync_cfg_fd_get(h, &fd) != CS_OK)
		return 1;
	printf("tracking\n");
	fflush(stdout);
	fds[0].fd = fd;
	fds[0].events = POLLIN;
	fds[1].fd = 0;
	fds[1].events = POLLIN;
	for (;;) {
		if (poll(fds, 2, -1) < 0)
			return 1;
		if (fds[1].revents)
			break;
		if (fds[0].revents) {
			rc = corosync_cfg_dispatch(h, CS_DISPATCH_ALL);
			if (rc != CS_OK) {
				printf("gone %d\n", (int)rc);
				fflush(stdout);
				return 0;
			}
		}
	}
	corosync_cfg_finalize(h);
	return 0;
}
