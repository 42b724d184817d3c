/*
 * hcnetsdk_fake.c: a test double of Hikvision's device network SDK
 * (libhcnetsdk.so), written by this project from the public header's
 * declarations. It exports the same entry points with the same structure
 * layouts, keeps its last error per OS thread as the vendor's library does,
 * runs real-play on threads of its own, calls back from those threads, and
 * can inject the faults a client must survive.
 *
 * Build: cc -shared -fPIC -O1 -pthread -o libhcnetsdk.so hcnetsdk_fake.c
 *
 * Configuration (fake_config, or the HCNETSDK_FAKE environment variable read
 * by NET_DVR_Init), "key=value" pairs separated by ';' or newlines:
 *   user, password        the one account (default admin / 12345)
 *   port                  the service port logins must use (default 8000)
 *   lock_after            failed logins before the account locks (default 5)
 *   lock_seconds          lock duration (default 1800)
 *   serial                device serial number
 *   analog, start_chan    analog channels and the first one (default 1, 1)
 *   ip_chans, start_dchan IP channels and the first one (default 0, 33)
 *   talk_chans            talk channels (default 1)
 *   media                 PS file served by real-play (any channel, any stream)
 *   video_format, audio_format, audio_rate  written into the 40-byte header
 *   speed                 pacing factor (default 1: real time)
 *   loop                  1: loop the file (default), 0: play once then idle
 *   talk_encoding         NET_DVR_COMPRESSION_AUDIO.byAudioEncType (default 1)
 *   talk_busy             1: voice talk answers "talk channel occupied"
 *   talk_record           file that receives every talk byte (append)
 *   slow_ms               every login/logout/play/stop/talk call takes this long
 *   control               file polled every 100 ms; each new line is a fault
 *                         name or a key=value setting (for other processes)
 *   stats                 file rewritten after each poll of the control file
 *                         with the counters of fake_count, "name value" lines
 *                         (for other processes; needs control)
 * Faults (fake_fault): reboot (exception callbacks, data stops, logins fail
 * with error 7), back (the device answers again), stall (play threads stay
 * alive but send nothing), resume, reset (configuration and counters back to
 * their defaults). With the SDK's own reconnect off (as the
 * client sets it), a reboot also ends every play for good and makes the
 * logins of the time unusable (error 47 on real-play and talk): the client
 * must stop, log out and log in again. With it on (the vendor's default), the
 * fake reports reconnect attempts and resumes the plays itself.
 */
#include "hcnetsdk_fake.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LOGINS 512
#define MAX_PLAYS 1024
#define MAX_TALKS 256

static __thread DWORD last_error;

static void set_error(DWORD e) { last_error = e; }

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

struct config {
	char user[64];
	char password[64];
	int port;
	int lock_after;
	int lock_seconds;
	char serial[48];
	int analog, start_chan, ip_chans, start_dchan, talk_chans;
	char media[1024];
	int video_format, audio_format, audio_rate;
	double speed;
	int loop;
	int talk_encoding;
	int talk_busy;
	char talk_record[1024];
	int slow_ms;
	char control[1024];
	char stats[1024];
};

static struct config cfg;
static int cfg_ready;

struct login {
	int used;
	int stale; /* the device rebooted under it: its session is gone */
	int plays;
	int talks;
};

struct play {
	int used;
	int userID;
	int channel;
	int stream;
	REALDATACALLBACK cb;
	void *user;
	pthread_t thread;
	int stop;
};

struct talk {
	int used;
	int userID;
	VOICEDATACALLBACK cb;
	void *user;
};

static struct login logins[MAX_LOGINS];
static struct play plays[MAX_PLAYS];
static struct talk talks[MAX_TALKS];

static int inited;
static long init_calls, cleanup_calls, cleanup_with_open;
static long login_attempts, failed_logins, locked_answers;
static int failures;            /* consecutive wrong passwords */
static time_t locked_until;     /* 0: not locked */
static int device_down;         /* rebooting */
static int stalled;
static int reconnect_enabled = 1; /* the vendor's default */
static long reconnect_interval_ms = 30000;
static long connect_wait_ms = 3000, connect_tries = 3, recv_timeout_ms = 5000;
static char sdk_path[256];
static EXCEPTIONCALLBACK exc_cb;
static void *exc_user;
static long exceptions_sent, data_callbacks;
static long storm_total_us, storm_calls; /* time inside storm callbacks */

/* the last stopped play and talk, for late-callback tests */
static REALDATACALLBACK late_play_cb;
static void *late_play_user;
static int late_play_handle = -1;
static VOICEDATACALLBACK late_talk_cb;
static void *late_talk_user;
static int late_talk_handle = -1;
static EXCEPTIONCALLBACK late_exc_cb;
static void *late_exc_user;
static int late_user_id = -1;

static char *talk_buf;
static long talk_len, talk_cap, talk_sends;
static long play_starts, talk_starts; /* RealPlay / StartVoiceCom calls, answered or refused */

static pthread_t control_thread;
static int control_running;

static void defaults(void) {
	memset(&cfg, 0, sizeof cfg);
	strcpy(cfg.user, "admin");
	strcpy(cfg.password, "12345");
	cfg.port = 8000;
	cfg.lock_after = 5;
	cfg.lock_seconds = 1800;
	strcpy(cfg.serial, "DS-FAKE0000-0000000000000000000000");
	cfg.analog = 1;
	cfg.start_chan = 1;
	cfg.ip_chans = 0;
	cfg.start_dchan = 33;
	cfg.talk_chans = 1;
	cfg.video_format = 0x0100;
	cfg.audio_format = 0;
	cfg.audio_rate = 8000;
	cfg.speed = 1;
	cfg.loop = 1;
	cfg.talk_encoding = 1;
	cfg_ready = 1;
}

static void ensure_cfg(void) {
	if (!cfg_ready) defaults();
}

static void sleep_ms(long ms) {
	if (ms <= 0) return;
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
	}
}

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void copy_str(char *dst, size_t cap, const char *src, size_t n) {
	if (n >= cap) n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

static int apply_fault_locked(const char *name);

/* one "key=value" or fault name; called with mu held */
static int apply_one_locked(const char *s, size_t n) {
	while (n > 0 && (*s == ' ' || *s == '\t')) s++, n--;
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
	if (n == 0) return 0;
	const char *eq = memchr(s, '=', n);
	if (!eq) {
		char name[64];
		copy_str(name, sizeof name, s, n);
		return apply_fault_locked(name);
	}
	char key[64], val[1024];
	copy_str(key, sizeof key, s, eq - s);
	copy_str(val, sizeof val, eq + 1, n - (eq - s) - 1);
	long iv = atol(val);
	if (!strcmp(key, "user")) copy_str(cfg.user, sizeof cfg.user, val, strlen(val));
	else if (!strcmp(key, "password")) copy_str(cfg.password, sizeof cfg.password, val, strlen(val));
	else if (!strcmp(key, "port")) cfg.port = iv;
	else if (!strcmp(key, "lock_after")) cfg.lock_after = iv;
	else if (!strcmp(key, "lock_seconds")) cfg.lock_seconds = iv;
	else if (!strcmp(key, "serial")) copy_str(cfg.serial, sizeof cfg.serial, val, strlen(val));
	else if (!strcmp(key, "analog")) cfg.analog = iv;
	else if (!strcmp(key, "start_chan")) cfg.start_chan = iv;
	else if (!strcmp(key, "ip_chans")) cfg.ip_chans = iv;
	else if (!strcmp(key, "start_dchan")) cfg.start_dchan = iv;
	else if (!strcmp(key, "talk_chans")) cfg.talk_chans = iv;
	else if (!strcmp(key, "media")) copy_str(cfg.media, sizeof cfg.media, val, strlen(val));
	else if (!strcmp(key, "video_format")) cfg.video_format = strtol(val, NULL, 0);
	else if (!strcmp(key, "audio_format")) cfg.audio_format = strtol(val, NULL, 0);
	else if (!strcmp(key, "audio_rate")) cfg.audio_rate = iv;
	else if (!strcmp(key, "speed")) cfg.speed = atof(val) > 0 ? atof(val) : 1;
	else if (!strcmp(key, "loop")) cfg.loop = iv;
	else if (!strcmp(key, "talk_encoding")) cfg.talk_encoding = iv;
	else if (!strcmp(key, "talk_busy")) cfg.talk_busy = iv;
	else if (!strcmp(key, "talk_record")) copy_str(cfg.talk_record, sizeof cfg.talk_record, val, strlen(val));
	else if (!strcmp(key, "slow_ms")) cfg.slow_ms = iv;
	else if (!strcmp(key, "control")) copy_str(cfg.control, sizeof cfg.control, val, strlen(val));
	else if (!strcmp(key, "stats")) copy_str(cfg.stats, sizeof cfg.stats, val, strlen(val));
	else return -1;
	return 0;
}

static int apply_list_locked(const char *kv) {
	int rc = 0;
	const char *p = kv;
	while (*p) {
		size_t n = strcspn(p, ";\n");
		if (apply_one_locked(p, n) < 0) rc = -1;
		p += n;
		if (*p) p++;
	}
	return rc;
}

int fake_config(const char *kv) {
	pthread_mutex_lock(&mu);
	ensure_cfg();
	int rc = apply_list_locked(kv);
	pthread_mutex_unlock(&mu);
	return rc;
}

/* ---- exceptions, sent from threads of the fake's own ---- */

struct exc_job {
	EXCEPTIONCALLBACK cb;
	void *user;
	int n;
	DWORD type[MAX_PLAYS + MAX_TALKS + MAX_LOGINS];
	LONG userID[MAX_PLAYS + MAX_TALKS + MAX_LOGINS];
	LONG handle[MAX_PLAYS + MAX_TALKS + MAX_LOGINS];
};

static void *exc_thread(void *arg) {
	struct exc_job *j = arg;
	for (int i = 0; i < j->n; i++) {
		j->cb(j->type[i], j->userID[i], j->handle[i], j->user);
		__atomic_add_fetch(&exceptions_sent, 1, __ATOMIC_RELAXED);
	}
	free(j);
	return NULL;
}

/* with mu held: queue one exception per open play/talk/login */
static void send_exceptions_locked(DWORD playType, DWORD talkType, DWORD loginType) {
	if (!exc_cb) return;
	struct exc_job *j = calloc(1, sizeof *j);
	j->cb = exc_cb;
	j->user = exc_user;
	if (playType)
		for (int i = 0; i < MAX_PLAYS; i++)
			if (plays[i].used) j->type[j->n] = playType, j->userID[j->n] = plays[i].userID, j->handle[j->n++] = i;
	if (talkType)
		for (int i = 0; i < MAX_TALKS; i++)
			if (talks[i].used) j->type[j->n] = talkType, j->userID[j->n] = talks[i].userID, j->handle[j->n++] = i;
	if (loginType)
		for (int i = 0; i < MAX_LOGINS; i++)
			if (logins[i].used) j->type[j->n] = loginType, j->userID[j->n] = i, j->handle[j->n++] = i;
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, exc_thread, j) != 0) free(j);
	pthread_attr_destroy(&a);
}

static int apply_fault_locked(const char *name) {
	if (!strcmp(name, "reboot")) {
		if (device_down) return 0;
		device_down = 1;
		if (!reconnect_enabled)
			for (int i = 0; i < MAX_LOGINS; i++)
				if (logins[i].used) logins[i].stale = 1;
		/* without the SDK's reconnect the client hears of the loss once;
		 * with it, the SDK also reports its reconnect attempts */
		send_exceptions_locked(FAKE_EXCEPTION_PREVIEW, FAKE_EXCEPTION_AUDIOEXCHANGE, FAKE_EXCEPTION_EXCHANGE);
		if (reconnect_enabled) send_exceptions_locked(FAKE_EXCEPTION_RECONNECT, 0, 0);
		return 0;
	}
	if (!strcmp(name, "back")) {
		if (!device_down) return 0;
		device_down = 0;
		if (reconnect_enabled) send_exceptions_locked(FAKE_PREVIEW_RECONNECTSUCCESS, 0, FAKE_RESUME_EXCHANGE);
		return 0;
	}
	if (!strcmp(name, "reset")) {
		/* configuration and counters back to the start; open handles stay
		 * (a control-file watcher already running keeps its file until
		 * NET_DVR_Cleanup) */
		char control[1024], stats[1024];
		strcpy(control, cfg.control);
		strcpy(stats, cfg.stats);
		defaults();
		if (control_running) strcpy(cfg.control, control), strcpy(cfg.stats, stats);
		failures = 0;
		locked_until = 0;
		device_down = 0;
		stalled = 0;
		login_attempts = failed_logins = locked_answers = cleanup_with_open = 0;
		talk_len = talk_sends = 0;
		play_starts = talk_starts = 0;
		for (int i = 0; i < MAX_LOGINS; i++) logins[i].stale = 0;
		return 0;
	}
	if (!strcmp(name, "stall")) {
		stalled = 1;
		return 0;
	}
	if (!strcmp(name, "resume")) {
		stalled = 0;
		return 0;
	}
	return -1;
}

int fake_fault(const char *name) {
	pthread_mutex_lock(&mu);
	ensure_cfg();
	int rc = apply_fault_locked(name);
	pthread_mutex_unlock(&mu);
	return rc;
}

/* ---- control file for other processes ---- */

long fake_count(const char *name);

/* write_stats rewrites path (through a temporary file and a rename, so a
 * reader never sees half of it) with the counters another process may
 * want. */
static void write_stats(const char *path) {
	static const char *names[] = {"logins", "plays", "talks", "login_attempts", "failed_logins",
	                              "locked_answers", "play_starts", "talk_starts", "talk_sends",
	                              "talk_bytes", "device_down"};
	char tmp[1100];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) return;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) fprintf(f, "%s %ld\n", names[i], fake_count(names[i]));
	if (fclose(f) == 0) rename(tmp, path);
}

static void *control_loop(void *arg) {
	(void)arg;
	long done = 0; /* bytes of the file already applied */
	for (;;) {
		pthread_mutex_lock(&mu);
		int run = control_running;
		char path[1024], stats[1024];
		strcpy(path, cfg.control);
		strcpy(stats, cfg.stats);
		pthread_mutex_unlock(&mu);
		if (!run) return NULL;
		FILE *f = fopen(path, "r");
		if (f) {
			char line[1200];
			long pos = 0;
			while (fgets(line, sizeof line, f)) {
				long len = strlen(line);
				if (pos >= done && len > 0 && line[len - 1] == '\n') {
					pthread_mutex_lock(&mu);
					apply_one_locked(line, len - 1);
					pthread_mutex_unlock(&mu);
					done = pos + len;
				}
				pos += len;
			}
			fclose(f);
		}
		if (stats[0]) write_stats(stats);
		sleep_ms(100);
	}
}

/* ---- init ---- */

BOOL NET_DVR_Init(void) {
	pthread_mutex_lock(&mu);
	ensure_cfg();
	const char *env = getenv("HCNETSDK_FAKE");
	if (env && !inited) apply_list_locked(env);
	init_calls++;
	inited = 1;
	if (cfg.control[0] && !control_running) {
		control_running = 1;
		pthread_create(&control_thread, NULL, control_loop, NULL);
	}
	pthread_mutex_unlock(&mu);
	set_error(0);
	return FAKE_TRUE;
}

static void stop_play_thread(int h);

BOOL NET_DVR_Cleanup(void) {
	pthread_mutex_lock(&mu);
	if (!inited) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_NOINIT);
		return FAKE_FALSE;
	}
	int open = 0;
	for (int i = 0; i < MAX_LOGINS; i++) open += logins[i].used;
	for (int i = 0; i < MAX_PLAYS; i++) open += plays[i].used;
	for (int i = 0; i < MAX_TALKS; i++) open += talks[i].used;
	if (open) cleanup_with_open++;
	int ctl = control_running;
	control_running = 0;
	pthread_mutex_unlock(&mu);
	if (ctl) pthread_join(control_thread, NULL);
	for (int i = 0; i < MAX_PLAYS; i++) {
		pthread_mutex_lock(&mu);
		int used = plays[i].used;
		pthread_mutex_unlock(&mu);
		if (used) stop_play_thread(i);
	}
	pthread_mutex_lock(&mu);
	memset(logins, 0, sizeof logins);
	memset(plays, 0, sizeof plays);
	memset(talks, 0, sizeof talks);
	inited = 0;
	exc_cb = NULL;
	exc_user = NULL;
	cleanup_calls++;
	pthread_mutex_unlock(&mu);
	set_error(0);
	return FAKE_TRUE;
}

BOOL NET_DVR_SetSDKInitCfg(int type, void *const in) {
	if (type == 2 && in) {
		pthread_mutex_lock(&mu);
		copy_str(sdk_path, sizeof sdk_path, ((NET_DVR_LOCAL_SDK_PATH *)in)->path,
		         strnlen(((NET_DVR_LOCAL_SDK_PATH *)in)->path, 255));
		pthread_mutex_unlock(&mu);
	}
	set_error(0);
	return FAKE_TRUE;
}

BOOL NET_DVR_SetConnectTime(DWORD waitMs, DWORD tries) {
	pthread_mutex_lock(&mu);
	connect_wait_ms = waitMs;
	connect_tries = tries;
	pthread_mutex_unlock(&mu);
	set_error(0);
	return FAKE_TRUE;
}

BOOL NET_DVR_SetReconnect(DWORD intervalMs, BOOL enable) {
	pthread_mutex_lock(&mu);
	reconnect_interval_ms = intervalMs;
	reconnect_enabled = enable ? 1 : 0;
	pthread_mutex_unlock(&mu);
	set_error(0);
	return FAKE_TRUE;
}

BOOL NET_DVR_SetRecvTimeOut(DWORD ms) {
	pthread_mutex_lock(&mu);
	recv_timeout_ms = ms;
	pthread_mutex_unlock(&mu);
	set_error(0);
	return FAKE_TRUE;
}

DWORD NET_DVR_GetLastError(void) { return last_error; }

DWORD NET_DVR_GetSDKVersion(void) { return 0x00060000; }

BOOL NET_DVR_SetExceptionCallBack_V30(unsigned int reserved1, void *reserved2, EXCEPTIONCALLBACK cb, void *user) {
	(void)reserved1;
	(void)reserved2;
	pthread_mutex_lock(&mu);
	exc_cb = cb;
	exc_user = user;
	pthread_mutex_unlock(&mu);
	set_error(0);
	return FAKE_TRUE;
}

/* ---- login ---- */

static long in_slow; /* calls sleeping in slow() now */

static int slow(void) {
	pthread_mutex_lock(&mu);
	int ms = cfg.slow_ms;
	pthread_mutex_unlock(&mu);
	if (ms <= 0) return 0;
	__atomic_add_fetch(&in_slow, 1, __ATOMIC_RELAXED);
	sleep_ms(ms);
	__atomic_sub_fetch(&in_slow, 1, __ATOMIC_RELAXED);
	return ms;
}

LONG NET_DVR_Login_V40(NET_DVR_USER_LOGIN_INFO *in, NET_DVR_DEVICEINFO_V40 *out) {
	if (!in || !out) {
		set_error(FAKE_ERR_PARAMETER);
		return -1;
	}
	slow();
	pthread_mutex_lock(&mu);
	if (!inited) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_NOINIT);
		return -1;
	}
	login_attempts++;
	memset(out, 0, sizeof *out);
	if (device_down || in->port != cfg.port) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_CONNECT);
		return -1;
	}
	time_t now = time(NULL);
	if (locked_until && now >= locked_until) {
		locked_until = 0;
		failures = 0;
	}
	out->supportLock = 1;
	if (locked_until) {
		locked_answers++;
		failed_logins++;
		out->retryLoginTime = 0;
		out->surplusLockTime = (DWORD)(locked_until - now);
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_USER_LOCKED);
		return -1;
	}
	char user[65], pass[65];
	copy_str(user, sizeof user, in->userName, strnlen(in->userName, 64));
	copy_str(pass, sizeof pass, in->password, strnlen(in->password, 64));
	if (strcmp(user, cfg.user) != 0 || strcmp(pass, cfg.password) != 0) {
		failed_logins++;
		failures++;
		if (failures >= cfg.lock_after) {
			locked_until = now + cfg.lock_seconds;
			out->retryLoginTime = 0;
			out->surplusLockTime = (DWORD)cfg.lock_seconds;
			pthread_mutex_unlock(&mu);
			set_error(FAKE_ERR_USER_LOCKED);
			return -1;
		}
		out->retryLoginTime = (BYTE)(cfg.lock_after - failures);
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_PASSWORD);
		return -1;
	}
	int id = -1;
	for (int i = 0; i < MAX_LOGINS; i++)
		if (!logins[i].used) {
			id = i;
			break;
		}
	if (id < 0) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_OVER_MAXLINK);
		return -1;
	}
	failures = 0;
	memset(&logins[id], 0, sizeof logins[id]);
	logins[id].used = 1;
	NET_DVR_DEVICEINFO_V30 *d = &out->v30;
	strncpy((char *)d->serial, cfg.serial, sizeof d->serial);
	d->chanNum = (BYTE)cfg.analog;
	d->startChan = (BYTE)cfg.start_chan;
	d->audioChanNum = (BYTE)cfg.talk_chans;
	d->ipChanNum = (BYTE)(cfg.ip_chans & 0xff);
	d->highDChanNum = (BYTE)(cfg.ip_chans >> 8);
	d->startDChan = (BYTE)cfg.start_dchan;
	d->startDTalkChan = 0;
	d->devType = 0x1234;
	out->retryLoginTime = (BYTE)cfg.lock_after;
	out->passwordLevel = 2;
	pthread_mutex_unlock(&mu);
	set_error(0);
	return id;
}

BOOL NET_DVR_Logout(LONG id) {
	slow();
	pthread_mutex_lock(&mu);
	if (!inited) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_NOINIT);
		return FAKE_FALSE;
	}
	if (id < 0 || id >= MAX_LOGINS || !logins[id].used) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_USER_NOT_EXIST);
		return FAKE_FALSE;
	}
	if (logins[id].plays || logins[id].talks) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_USERID_ISUSING);
		return FAKE_FALSE;
	}
	logins[id].used = 0;
	late_exc_cb = exc_cb;
	late_exc_user = exc_user;
	late_user_id = id;
	pthread_mutex_unlock(&mu);
	set_error(0);
	return FAKE_TRUE;
}

/* ---- real-play ---- */

/* the 40-byte media header: "IMKH", version, device id, system format
 * (2: MPEG-2 PS), video format, audio format, channels, bits per sample,
 * sample rate, bit rate, reserved; little-endian */
static void media_header(BYTE h[40]) {
	memset(h, 0, 40);
	memcpy(h, "IMKH", 4);
	h[4] = 0x01, h[5] = 0x01;
	h[8] = 2;
	h[10] = cfg.video_format & 0xff, h[11] = (cfg.video_format >> 8) & 0xff;
	h[12] = cfg.audio_format & 0xff, h[13] = (cfg.audio_format >> 8) & 0xff;
	if (cfg.audio_format) {
		h[14] = 1;
		h[15] = 16;
		h[16] = cfg.audio_rate & 0xff, h[17] = (cfg.audio_rate >> 8) & 0xff, h[18] = (cfg.audio_rate >> 16) & 0xff;
		h[20] = 0x00, h[21] = 0xfa; /* 64000 */
	}
}

/* SCR of a pack header at p (90 kHz), -1 if none */
static long long pack_scr(const BYTE *p, long n) {
	if (n < 10 || p[0] || p[1] || p[2] != 1 || p[3] != 0xBA) return -1;
	if ((p[4] & 0xC0) == 0x40) {
		return ((long long)(p[4] & 0x38) << 27) | ((long long)(p[4] & 0x03) << 28) | ((long long)p[5] << 20) |
		       ((long long)(p[6] & 0xF8) << 12) | ((long long)(p[6] & 0x03) << 13) | ((long long)p[7] << 5) |
		       (p[8] >> 3);
	}
	if ((p[4] & 0xF0) == 0x20) {
		return ((long long)(p[4] & 0x0E) << 29) | ((long long)p[5] << 22) | ((long long)(p[6] & 0xFE) << 14) |
		       ((long long)p[7] << 7) | (p[8] >> 1);
	}
	return -1;
}

static long next_pack(const BYTE *d, long n, long from) {
	for (long i = from; i + 3 < n; i++)
		if (d[i] == 0 && d[i + 1] == 0 && d[i + 2] == 1 && d[i + 3] == 0xBA) return i;
	return n;
}

static int play_should_stop(int h) {
	pthread_mutex_lock(&mu);
	int s = plays[h].stop;
	pthread_mutex_unlock(&mu);
	return s;
}

static void *play_thread(void *arg) {
	int h = (int)(intptr_t)arg;
	pthread_mutex_lock(&mu);
	REALDATACALLBACK cb = plays[h].cb;
	void *user = plays[h].user;
	char media[1024];
	strcpy(media, cfg.media);
	double speed = cfg.speed;
	int loop = cfg.loop;
	BYTE head[40];
	media_header(head);
	pthread_mutex_unlock(&mu);

	BYTE *data = NULL;
	long n = 0;
	if (media[0]) {
		FILE *f = fopen(media, "rb");
		if (f) {
			struct stat st;
			if (fstat(fileno(f), &st) == 0 && st.st_size > 0) {
				data = malloc(st.st_size);
				n = (long)fread(data, 1, st.st_size, f);
			}
			fclose(f);
		}
	}
	if (cb) {
		cb(h, FAKE_SYSHEAD, head, 40, user);
		__atomic_add_fetch(&data_callbacks, 1, __ATOMIC_RELAXED);
	}
	/* pacing: a pack is due (its SCR - the anchor's SCR) / 90 kHz / speed
	 * after the anchor; the anchor moves to the next pack after a pause
	 * (stall, reboot) and after each loop, so nothing comes in a burst */
	double anchor_t = 0;
	long long anchor_scr = -1;
	long pos = 0;
	int sent_all = 0, dead = 0;
	while (!play_should_stop(h)) {
		pthread_mutex_lock(&mu);
		if (device_down && !reconnect_enabled) dead = 1; /* the vendor's SDK gives up on the play */
		int idle = dead || device_down || stalled || !data || sent_all;
		pthread_mutex_unlock(&mu);
		if (idle) {
			anchor_scr = -1;
			sleep_ms(5);
			continue;
		}
		long end = next_pack(data, n, pos + 4);
		long long scr = pack_scr(data + pos, n - pos);
		if (scr >= 0) {
			if (anchor_scr < 0 || scr < anchor_scr) {
				anchor_scr = scr;
				anchor_t = now_s();
			}
			double due = anchor_t + (double)(scr - anchor_scr) / 90000.0 / speed;
			double wait = due - now_s();
			while (wait > 0 && !play_should_stop(h)) {
				sleep_ms(wait > 0.02 ? 20 : (long)(wait * 1000) + 1);
				wait = due - now_s();
			}
			if (play_should_stop(h)) break;
		}
		if (cb) {
			cb(h, FAKE_STREAMDATA, data + pos, (DWORD)(end - pos), user);
			__atomic_add_fetch(&data_callbacks, 1, __ATOMIC_RELAXED);
		}
		pos = end;
		if (pos >= n) {
			if (!loop) {
				sent_all = 1;
				continue;
			}
			sleep_ms((long)(40 / speed)); /* one 25 fps frame */
			anchor_scr = -1;
			pos = 0;
		}
	}
	free(data);
	return NULL;
}

LONG NET_DVR_RealPlay_V40(LONG userID, NET_DVR_PREVIEWINFO *p, REALDATACALLBACK cb, void *user) {
	slow();
	__atomic_add_fetch(&play_starts, 1, __ATOMIC_RELAXED);
	if (!p) {
		set_error(FAKE_ERR_PARAMETER);
		return -1;
	}
	pthread_mutex_lock(&mu);
	if (!inited) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_NOINIT);
		return -1;
	}
	if (userID < 0 || userID >= MAX_LOGINS || !logins[userID].used || logins[userID].stale) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_USER_NOT_EXIST);
		return -1;
	}
	if (device_down) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_CONNECT);
		return -1;
	}
	int ch = p->channel;
	int analog = ch >= cfg.start_chan && ch < cfg.start_chan + cfg.analog;
	int digital = ch >= cfg.start_dchan && ch < cfg.start_dchan + cfg.ip_chans;
	if (!analog && !digital) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_CHANNEL);
		return -1;
	}
	if (p->streamType > 2 || p->linkMode > 5) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_PARAMETER);
		return -1;
	}
	int h = -1;
	for (int i = 0; i < MAX_PLAYS; i++)
		if (!plays[i].used) {
			h = i;
			break;
		}
	if (h < 0) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_OVER_MAXLINK);
		return -1;
	}
	memset(&plays[h], 0, sizeof plays[h]);
	plays[h].used = 1;
	plays[h].userID = userID;
	plays[h].channel = ch;
	plays[h].stream = p->streamType;
	plays[h].cb = cb;
	plays[h].user = user;
	logins[userID].plays++;
	if (pthread_create(&plays[h].thread, NULL, play_thread, (void *)(intptr_t)h) != 0) {
		plays[h].used = 0;
		logins[userID].plays--;
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_PARAMETER);
		return -1;
	}
	pthread_mutex_unlock(&mu);
	set_error(0);
	return h;
}

/* like the vendor's library, stopping waits for the data thread, so a
 * callback that never returns hangs StopRealPlay */
static void stop_play_thread(int h) {
	pthread_mutex_lock(&mu);
	plays[h].stop = 1;
	pthread_t t = plays[h].thread;
	pthread_mutex_unlock(&mu);
	pthread_join(t, NULL);
	pthread_mutex_lock(&mu);
	if (plays[h].used) {
		late_play_cb = plays[h].cb;
		late_play_user = plays[h].user;
		late_play_handle = h;
		if (logins[plays[h].userID].plays > 0) logins[plays[h].userID].plays--;
		plays[h].used = 0;
	}
	pthread_mutex_unlock(&mu);
}

BOOL NET_DVR_StopRealPlay(LONG h) {
	slow();
	pthread_mutex_lock(&mu);
	if (!inited) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_NOINIT);
		return FAKE_FALSE;
	}
	if (h < 0 || h >= MAX_PLAYS || !plays[h].used || plays[h].stop) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_PARAMETER);
		return FAKE_FALSE;
	}
	pthread_mutex_unlock(&mu);
	stop_play_thread(h);
	set_error(0);
	return FAKE_TRUE;
}

/* ---- voice talk ---- */

LONG NET_DVR_StartVoiceCom_MR_V30(LONG userID, DWORD chan, VOICEDATACALLBACK cb, void *user) {
	slow();
	pthread_mutex_lock(&mu);
	talk_starts++;
	if (!inited) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_NOINIT);
		return -1;
	}
	if (userID < 0 || userID >= MAX_LOGINS || !logins[userID].used || logins[userID].stale) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_USER_NOT_EXIST);
		return -1;
	}
	if (device_down) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_CONNECT);
		return -1;
	}
	if (chan < 1 || (int)chan > cfg.talk_chans) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_CHANNEL);
		return -1;
	}
	int open = 0;
	for (int i = 0; i < MAX_TALKS; i++) open += talks[i].used;
	if (cfg.talk_busy || open) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_VOICE_OPENED);
		return -1;
	}
	int h = -1;
	for (int i = 0; i < MAX_TALKS; i++)
		if (!talks[i].used) {
			h = i;
			break;
		}
	memset(&talks[h], 0, sizeof talks[h]);
	talks[h].used = 1;
	talks[h].userID = userID;
	talks[h].cb = cb;
	talks[h].user = user;
	logins[userID].talks++;
	pthread_mutex_unlock(&mu);
	set_error(0);
	return h;
}

BOOL NET_DVR_VoiceComSendData(LONG h, char *buf, DWORD size) {
	pthread_mutex_lock(&mu);
	if (h < 0 || h >= MAX_TALKS || !talks[h].used || !buf) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_PARAMETER);
		return FAKE_FALSE;
	}
	if (device_down) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_CONNECT);
		return FAKE_FALSE;
	}
	if (talk_len + (long)size > talk_cap && talk_len + (long)size <= (16L << 20)) {
		long c = talk_cap ? talk_cap : 65536;
		while (c < talk_len + (long)size) c *= 2;
		char *nb = realloc(talk_buf, c);
		if (nb) talk_buf = nb, talk_cap = c;
	}
	if (talk_len + (long)size <= talk_cap) {
		memcpy(talk_buf + talk_len, buf, size);
		talk_len += size;
	}
	talk_sends++;
	if (cfg.talk_record[0]) {
		FILE *f = fopen(cfg.talk_record, "ab");
		if (f) {
			fwrite(buf, 1, size, f);
			fclose(f);
		}
	}
	pthread_mutex_unlock(&mu);
	set_error(0);
	return FAKE_TRUE;
}

BOOL NET_DVR_StopVoiceCom(LONG h) {
	slow();
	pthread_mutex_lock(&mu);
	if (h < 0 || h >= MAX_TALKS || !talks[h].used) {
		pthread_mutex_unlock(&mu);
		set_error(FAKE_ERR_PARAMETER);
		return FAKE_FALSE;
	}
	late_talk_cb = talks[h].cb;
	late_talk_user = talks[h].user;
	late_talk_handle = h;
	if (logins[talks[h].userID].talks > 0) logins[talks[h].userID].talks--;
	talks[h].used = 0;
	pthread_mutex_unlock(&mu);
	set_error(0);
	return FAKE_TRUE;
}

BOOL NET_DVR_GetCurrentAudioCompress(LONG userID, NET_DVR_COMPRESSION_AUDIO *out) {
	pthread_mutex_lock(&mu);
	if (!out || userID < 0 || userID >= MAX_LOGINS || !logins[userID].used) {
		pthread_mutex_unlock(&mu);
		set_error(out ? FAKE_ERR_USER_NOT_EXIST : FAKE_ERR_PARAMETER);
		return FAKE_FALSE;
	}
	memset(out, 0, sizeof *out);
	out->audioEncType = (BYTE)cfg.talk_encoding;
	out->audioSamplingRate = 0;
	pthread_mutex_unlock(&mu);
	set_error(0);
	return FAKE_TRUE;
}

/* ---- fake-only surface ---- */

long fake_count(const char *name) {
	long v = -1;
	pthread_mutex_lock(&mu);
	if (!strcmp(name, "logins") || !strcmp(name, "plays") || !strcmp(name, "talks")) {
		v = 0;
		if (name[0] == 'l')
			for (int i = 0; i < MAX_LOGINS; i++) v += logins[i].used;
		else if (name[0] == 'p')
			for (int i = 0; i < MAX_PLAYS; i++) v += plays[i].used;
		else
			for (int i = 0; i < MAX_TALKS; i++) v += talks[i].used;
	} else if (!strcmp(name, "inited")) v = inited;
	else if (!strcmp(name, "init_calls")) v = init_calls;
	else if (!strcmp(name, "cleanup_calls")) v = cleanup_calls;
	else if (!strcmp(name, "cleanup_with_open")) v = cleanup_with_open;
	else if (!strcmp(name, "login_attempts")) v = login_attempts;
	else if (!strcmp(name, "failed_logins")) v = failed_logins;
	else if (!strcmp(name, "locked_answers")) v = locked_answers;
	else if (!strcmp(name, "reconnect_enabled")) v = reconnect_enabled;
	else if (!strcmp(name, "reconnect_interval_ms")) v = reconnect_interval_ms;
	else if (!strcmp(name, "connect_wait_ms")) v = connect_wait_ms;
	else if (!strcmp(name, "connect_tries")) v = connect_tries;
	else if (!strcmp(name, "recv_timeout_ms")) v = recv_timeout_ms;
	else if (!strcmp(name, "exceptions_sent")) v = __atomic_load_n(&exceptions_sent, __ATOMIC_RELAXED);
	else if (!strcmp(name, "data_callbacks")) v = __atomic_load_n(&data_callbacks, __ATOMIC_RELAXED);
	else if (!strcmp(name, "talk_bytes")) v = talk_len;
	else if (!strcmp(name, "talk_sends")) v = talk_sends;
	else if (!strcmp(name, "play_starts")) v = __atomic_load_n(&play_starts, __ATOMIC_RELAXED);
	else if (!strcmp(name, "talk_starts")) v = talk_starts;
	else if (!strcmp(name, "exception_callback_set")) v = exc_cb != NULL;
	else if (!strcmp(name, "sdk_path_len")) v = (long)strlen(sdk_path);
	else if (!strcmp(name, "device_down")) v = device_down;
	else if (!strcmp(name, "storm_total_us")) v = __atomic_load_n(&storm_total_us, __ATOMIC_RELAXED);
	else if (!strcmp(name, "storm_calls")) v = __atomic_load_n(&storm_calls, __ATOMIC_RELAXED);
	else if (!strcmp(name, "in_slow")) v = __atomic_load_n(&in_slow, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&mu);
	return v;
}

long fake_talk_bytes(char *out, long cap) {
	pthread_mutex_lock(&mu);
	long n = talk_len < cap ? talk_len : cap;
	if (out && n > 0) memcpy(out, talk_buf, n);
	pthread_mutex_unlock(&mu);
	return n;
}

#define LAYOUT(T) \
	if (!strcmp(name, "sizeof " #T)) return (long)sizeof(T);
#define FIELD(T, f, label) \
	if (!strcmp(name, "offsetof " #T "." label)) return (long)offsetof(T, f);

long fake_layout(const char *name) {
	LAYOUT(NET_DVR_DEVICEINFO_V30)
	LAYOUT(NET_DVR_DEVICEINFO_V40)
	LAYOUT(NET_DVR_USER_LOGIN_INFO)
	LAYOUT(NET_DVR_PREVIEWINFO)
	LAYOUT(NET_DVR_COMPRESSION_AUDIO)
	LAYOUT(NET_DVR_LOCAL_SDK_PATH)
	FIELD(NET_DVR_DEVICEINFO_V30, chanNum, "byChanNum")
	FIELD(NET_DVR_DEVICEINFO_V30, startChan, "byStartChan")
	FIELD(NET_DVR_DEVICEINFO_V30, audioChanNum, "byAudioChanNum")
	FIELD(NET_DVR_DEVICEINFO_V30, ipChanNum, "byIPChanNum")
	FIELD(NET_DVR_DEVICEINFO_V30, devType, "wDevType")
	FIELD(NET_DVR_DEVICEINFO_V30, startDChan, "byStartDChan")
	FIELD(NET_DVR_DEVICEINFO_V30, startDTalkChan, "byStartDTalkChan")
	FIELD(NET_DVR_DEVICEINFO_V30, highDChanNum, "byHighDChanNum")
	FIELD(NET_DVR_DEVICEINFO_V40, supportLock, "bySupportLock")
	FIELD(NET_DVR_DEVICEINFO_V40, retryLoginTime, "byRetryLoginTime")
	FIELD(NET_DVR_DEVICEINFO_V40, passwordLevel, "byPasswordLevel")
	FIELD(NET_DVR_DEVICEINFO_V40, surplusLockTime, "dwSurplusLockTime")
	FIELD(NET_DVR_USER_LOGIN_INFO, useTransport, "byUseTransport")
	FIELD(NET_DVR_USER_LOGIN_INFO, port, "wPort")
	FIELD(NET_DVR_USER_LOGIN_INFO, userName, "sUserName")
	FIELD(NET_DVR_USER_LOGIN_INFO, password, "sPassword")
	FIELD(NET_DVR_USER_LOGIN_INFO, cbLoginResult, "cbLoginResult")
	FIELD(NET_DVR_USER_LOGIN_INFO, user, "pUser")
	FIELD(NET_DVR_USER_LOGIN_INFO, useAsynLogin, "bUseAsynLogin")
	FIELD(NET_DVR_USER_LOGIN_INFO, loginMode, "byLoginMode")
	FIELD(NET_DVR_USER_LOGIN_INFO, https, "byHttps")
	FIELD(NET_DVR_PREVIEWINFO, streamType, "dwStreamType")
	FIELD(NET_DVR_PREVIEWINFO, linkMode, "dwLinkMode")
	FIELD(NET_DVR_PREVIEWINFO, playWnd, "hPlayWnd")
	FIELD(NET_DVR_PREVIEWINFO, blocked, "bBlocked")
	FIELD(NET_DVR_PREVIEWINFO, previewMode, "byPreviewMode")
	FIELD(NET_DVR_PREVIEWINFO, protoType, "byProtoType")
	FIELD(NET_DVR_PREVIEWINFO, displayBufNum, "dwDisplayBufNum")
	FIELD(NET_DVR_COMPRESSION_AUDIO, audioEncType, "byAudioEncType")
	FIELD(NET_DVR_COMPRESSION_AUDIO, audioSamplingRate, "byAudioSamplingRate")
	FIELD(NET_DVR_COMPRESSION_AUDIO, audioBitRate, "byAudioBitRate")
	return -1;
}

/* storm: for every open play, `threads` threads each deliver `perThread`
 * data callbacks of `bytes` bytes and as many harmless exception callbacks;
 * returns the longest single callback in microseconds */
struct storm_arg {
	REALDATACALLBACK cb;
	void *user;
	int handle, userID, n, bytes;
	EXCEPTIONCALLBACK ecb;
	void *euser;
	long max_us;
	long total_us;
};

static void *storm_thread(void *p) {
	struct storm_arg *a = p;
	BYTE *buf = malloc(a->bytes > 0 ? a->bytes : 1);
	for (int i = 0; i < a->bytes; i++) buf[i] = (BYTE)(i * 7 + a->handle);
	for (int i = 0; i < a->n; i++) {
		double t0 = now_s();
		if (a->cb) a->cb(a->handle, FAKE_STREAMDATA, buf, (DWORD)a->bytes, a->user);
		if (a->ecb) a->ecb(FAKE_NETWORK_FLOWTEST_EXCEPTION, a->userID, a->handle, a->euser);
		long us = (long)((now_s() - t0) * 1e6);
		if (us > a->max_us) a->max_us = us;
		a->total_us += us;
	}
	free(buf);
	return NULL;
}

long fake_storm(int threads, int perThread, int bytes) {
	struct storm_arg *args = calloc((size_t)MAX_PLAYS * threads, sizeof *args);
	pthread_t *ts = calloc((size_t)MAX_PLAYS * threads, sizeof *ts);
	int n = 0;
	pthread_mutex_lock(&mu);
	for (int h = 0; h < MAX_PLAYS; h++) {
		if (!plays[h].used) continue;
		for (int k = 0; k < threads; k++) {
			struct storm_arg *a = &args[n];
			a->cb = plays[h].cb;
			a->user = plays[h].user;
			a->handle = h;
			a->userID = plays[h].userID;
			a->n = perThread;
			a->bytes = bytes;
			a->ecb = exc_cb;
			a->euser = exc_user;
			if (pthread_create(&ts[n], NULL, storm_thread, a) == 0) n++;
		}
	}
	pthread_mutex_unlock(&mu);
	long max = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(ts[i], NULL);
		if (args[i].max_us > max) max = args[i].max_us;
		__atomic_add_fetch(&storm_total_us, args[i].total_us, __ATOMIC_RELAXED);
		__atomic_add_fetch(&storm_calls, args[i].n, __ATOMIC_RELAXED);
	}
	free(args);
	free(ts);
	return n ? max : -1;
}

struct late_arg {
	int n;
};

static void *late_thread(void *p) {
	struct late_arg *a = p;
	pthread_mutex_lock(&mu);
	REALDATACALLBACK pcb = late_play_cb;
	void *puser = late_play_user;
	int ph = late_play_handle;
	VOICEDATACALLBACK tcb = late_talk_cb;
	void *tuser = late_talk_user;
	int th = late_talk_handle;
	EXCEPTIONCALLBACK ecb = late_exc_cb ? late_exc_cb : exc_cb;
	void *euser = late_exc_cb ? late_exc_user : exc_user;
	int uid = late_user_id;
	pthread_mutex_unlock(&mu);
	BYTE buf[188] = {0, 0, 1, 0xBA};
	for (int i = 0; i < a->n; i++) {
		if (pcb) pcb(ph, FAKE_STREAMDATA, buf, sizeof buf, puser);
		if (tcb) tcb(th, (char *)buf, 160, 1, tuser);
		if (ecb && ph >= 0) ecb(FAKE_EXCEPTION_PREVIEW, uid, ph, euser);
		if (ecb && uid >= 0) ecb(FAKE_EXCEPTION_EXCHANGE, uid, uid, euser);
	}
	return NULL;
}

/* calls the callbacks of the last stopped play and talk (and exceptions for
 * the last logged-out user) n times each from a fresh thread; returns the
 * number of callback calls made */
long fake_late_callbacks(int n) {
	struct late_arg a = {n};
	pthread_t t;
	if (pthread_create(&t, NULL, late_thread, &a) != 0) return -1;
	pthread_join(t, NULL);
	pthread_mutex_lock(&mu);
	long calls = (long)n * ((late_play_cb != NULL) + (late_talk_cb != NULL));
	pthread_mutex_unlock(&mu);
	return calls;
}

static void *error_reader(void *p) {
	*(DWORD *)p = NET_DVR_GetLastError();
	return NULL;
}

DWORD fake_error_on_new_thread(void) {
	DWORD v = 0xFFFFFFFF;
	pthread_t t;
	if (pthread_create(&t, NULL, error_reader, &v) != 0) return 0xFFFFFFFF;
	pthread_join(t, NULL);
	return v;
}
