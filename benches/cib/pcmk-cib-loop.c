/* Closed-loop modify client for Pacemaker's CIB (libcib, public API): one signed-on
 * connection, then OPS synchronous modifies of one nvpair in crm_config, one at a time.
 * Prints "opm SIZE_KB libcib-closed I T0_US T1_US" per op (see summarize-ops.sh).
 * Build: cc -O2 -o pcmk-cib-loop pcmk-cib-loop.c $(pkg-config --cflags --libs pacemaker-cib)
 * Usage: pcmk-cib-loop SIZE_KB OPS      (run inside the node's network namespace) */
#include <crm/cib.h>
#include <crm/common/xml.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SIZE_KB OPS\n", argv[0]);
        return 2;
    }
    const char *size = argv[1];
    int ops = atoi(argv[2]);
    cib_t *cib = cib_new();
    int rc = cib->cmds->signon(cib, "cibperf", cib_command);
    if (rc != pcmk_ok) {
        fprintf(stderr, "signon: %s\n", pcmk_strerror(rc));
        return 1;
    }
    char buf[256];
    for (int i = 1; i <= ops; i++) {
        snprintf(buf, sizeof buf,
                 "<cluster_property_set id=\"bench-options\"><nvpair id=\"bench-options-counter\""
                 " name=\"counter\" value=\"c%d\"/></cluster_property_set>", i);
        long long t0 = now_us();
        xmlNode *input = string2xml(buf);
        rc = cib->cmds->modify(cib, "crm_config", input, cib_sync_call);
        free_xml(input);
        long long t1 = now_us();
        if (rc != pcmk_ok) {
            fprintf(stderr, "modify %d: %s\n", i, pcmk_strerror(rc));
            return 1;
        }
        printf("opm %s libcib-closed %d %lld %lld\n", size, i, t0, t1);
    }
    cib->cmds->signoff(cib);
    cib_delete(cib);
    return 0;
}
