/*
 * kafka-mock: a local Kafka-protocol endpoint built on librdkafka's mock cluster.
 *
 *   kafka-mock [--brokers N] [topic:partitions ...]
 *
 * Prints one line "BOOTSTRAP host:port[,host:port...]" on stdout when ready, then reads
 * line commands on stdin and answers each with exactly one line, "OK" or "ERR <message>":
 *
 *   topic <name> <partitions>   create a topic (replication factor 1)
 *   down <brokerId>             disconnect the broker and refuse new connections (ids start at 1)
 *   up <brokerId>               accept connections again
 *   quit                        exit
 *
 * EOF on stdin (the parent closed the pipe or died), SIGTERM and SIGINT also exit cleanly.
 * Development and test use only: this is librdkafka's experimental mock, not a Kafka broker.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define LINE_MAX_LEN 4096

static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig) { stop_signal = sig; }

static void die(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fputs("kafka-mock: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        exit(2);
}

/* Writes one reply line; returns -1 when stdout is gone (the parent left). */
static int reply(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
        return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -1;
}

/* Parses a decimal int in [min, max]; returns 0 on success. */
static int parse_int(const char *s, long min, long max, int *out) {
        char *end;
        long v;
        if (!s || !*s)
                return -1;
        errno = 0;
        v     = strtol(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -1;
        *out = (int)v;
        return 0;
}

/* Kafka topic names: 1-249 chars of [a-zA-Z0-9._-]. */
static int valid_topic(const char *name) {
        size_t n = strlen(name);
        if (n == 0 || n > 249 || !strcmp(name, ".") || !strcmp(name, ".."))
                return 0;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
                        return 0;
        return 1;
}

/*
 * librdkafka's mock never sets its controller id, so Metadata responses name broker 0, which does
 * not exist (mock broker ids start at 1). Clients that send requests to "the controller" then fail:
 * kafkajs' idempotent producer asks it for a producer id ("Broker 0 not found in the cached
 * metadata"). There is no public setter, but the cluster struct has started with the same three
 * fields since the mock was added (librdkafka 1.3 through 2.x, src/rdkafka_mock_int.h):
 *     char id[32]; rd_kafka_t *rk; int32_t controller_id; ...
 * We check that layout against what we know (the rk pointer we passed in, a NUL-terminated id,
 * controller 0) and only then set the controller. It is written once, before any client can
 * connect. Returns 0 when set, -1 when the layout does not match (the mock then keeps controller 0).
 */
struct mock_cluster_prefix {
        char id[32];
        rd_kafka_t *rk;
        int32_t controller_id;
};

static int set_controller(rd_kafka_mock_cluster_t *mc, rd_kafka_t *rk, int32_t broker_id) {
        struct mock_cluster_prefix *p = (struct mock_cluster_prefix *)(void *)mc;
        if (rd_kafka_mock_cluster_handle(mc) != rk || p->rk != rk ||
            !memchr(p->id, '\0', sizeof(p->id)) || p->controller_id != 0)
                return -1;
        p->controller_id = broker_id;
        return 0;
}

static rd_kafka_resp_err_t create_topic(rd_kafka_mock_cluster_t *mc, const char *name,
                                        int partitions) {
        return rd_kafka_mock_topic_create(mc, name, partitions, 1);
}

/* Handles one command line; returns 1 to quit, -1 if stdout is gone, 0 otherwise. */
static int handle_command(rd_kafka_mock_cluster_t *mc, int broker_cnt, char *line) {
        char *save = NULL;
        char *cmd  = strtok_r(line, " \t\r", &save);
        char *a1   = cmd ? strtok_r(NULL, " \t\r", &save) : NULL;
        char *a2   = a1 ? strtok_r(NULL, " \t\r", &save) : NULL;
        char *a3   = a2 ? strtok_r(NULL, " \t\r", &save) : NULL;
        rd_kafka_resp_err_t err;
        int n;

        if (!cmd)
                return reply("ERR empty command");

        if (!strcmp(cmd, "quit")) {
                reply("OK");
                return 1;
        }

        if (!strcmp(cmd, "topic")) {
                if (!a1 || !a2 || a3)
                        return reply("ERR usage: topic <name> <partitions>");
                if (!valid_topic(a1))
                        return reply("ERR invalid topic name '%s'", a1);
                if (parse_int(a2, 1, 100000, &n))
                        return reply("ERR invalid partition count '%s'", a2);
                err = create_topic(mc, a1, n);
                if (err)
                        return reply("ERR %s", rd_kafka_err2str(err));
                return reply("OK");
        }

        if (!strcmp(cmd, "down") || !strcmp(cmd, "up")) {
                if (!a1 || a2)
                        return reply("ERR usage: %s <brokerId>", cmd);
                if (parse_int(a1, 1, broker_cnt, &n))
                        return reply("ERR unknown broker '%s' (ids are 1..%d)", a1, broker_cnt);
                err = !strcmp(cmd, "down") ? rd_kafka_mock_broker_set_down(mc, n)
                                           : rd_kafka_mock_broker_set_up(mc, n);
                if (err)
                        return reply("ERR %s", rd_kafka_err2str(err));
                return reply("OK");
        }

        return reply("ERR unknown command '%s'", cmd);
}

int main(int argc, char **argv) {
        int broker_cnt = 1;
        char errstr[512];
        sigset_t blocked, waitmask;
        struct sigaction sa;

        /* Die with the parent even if it is killed before it closes our stdin. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);

        /* Block SIGTERM/SIGINT in every thread (librdkafka's threads inherit this mask);
         * the main thread takes them only inside ppoll() below. */
        sigemptyset(&blocked);
        sigaddset(&blocked, SIGTERM);
        sigaddset(&blocked, SIGINT);
        pthread_sigmask(SIG_BLOCK, &blocked, &waitmask);
        sigdelset(&waitmask, SIGTERM);
        sigdelset(&waitmask, SIGINT);
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        if (getppid() == 1) /* parent already gone before prctl took effect */
                return 0;

        /* Arguments: first pass for --brokers, topics are created after the cluster exists. */
        for (int i = 1; i < argc; i++) {
                const char *v = NULL;
                if (!strcmp(argv[i], "--brokers")) {
                        if (++i >= argc)
                                die("--brokers needs a value");
                        v = argv[i];
                } else if (!strncmp(argv[i], "--brokers=", 10)) {
                        v = argv[i] + 10;
                } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
                        printf("usage: %s [--brokers N] [topic:partitions ...]\n", argv[0]);
                        return 0;
                } else if (argv[i][0] == '-') {
                        die("unknown option '%s'", argv[i]);
                }
                if (v && parse_int(v, 1, 64, &broker_cnt))
                        die("invalid broker count '%s' (1..64)", v);
        }

        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        /* The mock needs a client handle for bookkeeping; at the default log level it would
         * warn that this handle has no bootstrap.servers. */
        if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
                die("log_level: %s", errstr);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk)
                die("rd_kafka_new: %s", errstr);

        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, broker_cnt);
        if (!mc)
                die("rd_kafka_mock_cluster_new failed");
        if (set_controller(mc, rk, 1) == -1)
                fprintf(stderr, "kafka-mock: warning: unknown mock cluster layout, controller id "
                                "left at 0 (idempotent kafkajs producers will not connect)\n");

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--brokers")) {
                        i++;
                        continue;
                }
                if (argv[i][0] == '-')
                        continue;
                char name[256];
                const char *colon = strrchr(argv[i], ':');
                int parts         = 0;
                size_t len        = colon ? (size_t)(colon - argv[i]) : 0;
                if (!colon || len >= sizeof(name) || parse_int(colon + 1, 1, 100000, &parts))
                        die("invalid topic argument '%s' (expected name:partitions)", argv[i]);
                memcpy(name, argv[i], len);
                name[len] = '\0';
                if (!valid_topic(name))
                        die("invalid topic name '%s'", name);
                rd_kafka_resp_err_t err = create_topic(mc, name, parts);
                if (err)
                        die("creating topic '%s': %s", name, rd_kafka_err2str(err));
        }

        if (reply("BOOTSTRAP %s", rd_kafka_mock_cluster_bootstraps(mc)) == -1)
                stop_signal = SIGPIPE;

        char buf[LINE_MAX_LEN];
        size_t used    = 0;
        int quitting   = 0;
        int discarding = 0; /* inside an over-long line: drop bytes until its newline */
        while (!stop_signal && !quitting) {
                struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
                int r             = ppoll(&pfd, 1, NULL, &waitmask);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("kafka-mock: ppoll");
                        break;
                }
                ssize_t n = read(STDIN_FILENO, buf + used, sizeof(buf) - 1 - used);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        perror("kafka-mock: read");
                        break;
                }
                if (n == 0) /* EOF: the parent closed our stdin or died */
                        break;
                used += (size_t)n;

                char *start = buf, *nl;
                while (!quitting && (nl = memchr(start, '\n', used - (size_t)(start - buf)))) {
                        *nl = '\0';
                        if (discarding) { /* one answer for the whole over-long line */
                                discarding = 0;
                                if (reply("ERR line too long") == -1)
                                        quitting = 1;
                        } else if (handle_command(mc, broker_cnt, start) != 0) {
                                quitting = 1;
                        }
                        start = nl + 1;
                }
                used -= (size_t)(start - buf);
                memmove(buf, start, used);
                if (used == sizeof(buf) - 1) { /* full without a newline */
                        discarding = 1;
                        used       = 0;
                }
        }

        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 0;
}
