// Loads a GGUF once with a real llama.cpp and creates one context per configuration given on
// the command line, printing llama.cpp's own buffer lines, so that tests/test_fit_llama_cpp.py
// can compare `llmdoctor fit` with what llama.cpp really allocates (hundreds of contexts at the
// cost of one model load). Built by tests/llama_cpp_build.py against the libllama it builds.
//
// usage: llama_probe MODEL.gguf REPACK(0|1) NGL CONFIG...
//   CONFIG = ctx:cache(f16|q8_0):fa(on|off|auto):n_seq:unified(0|1):ubatch
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

static void log_to_stdout(enum ggml_log_level level, const char * text, void *) {
    (void) level;
    // only what the test reads: buffer sizes, the resolved flash-attention choice, the context
    if (strstr(text, "buffer size") || strstr(text, "flash_attn") || strstr(text, "Flash Attention") ||
        strstr(text, "n_ctx") || strstr(text, "error") || strstr(text, "failed")) {
        fputs(text, stdout);
    }
}

static ggml_type cache_type(const std::string & name) {
    return name == "q8_0" ? GGML_TYPE_Q8_0 : name == "q4_0" ? GGML_TYPE_Q4_0 : GGML_TYPE_F16;
}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL REPACK NGL CONFIG...\n", argv[0]);
        return 2;
    }
    llama_log_set(log_to_stdout, nullptr);
    llama_backend_init();
    ggml_backend_load_all();
    // LLAMA_PROBE_RPC=host:port,...: add llama.cpp RPC servers as devices, as --rpc does
    // (common/arg.cpp add_rpc_devices); their placement path is the one CUDA devices take
    if (const char * servers = getenv("LLAMA_PROBE_RPC")) {
        ggml_backend_reg_t rpc_reg = ggml_backend_reg_by_name("RPC");
        typedef ggml_backend_reg_t (*add_server_t)(const char * endpoint);
        add_server_t add_server = rpc_reg ? (add_server_t) ggml_backend_reg_get_proc_address(rpc_reg, "ggml_backend_rpc_add_server") : nullptr;
        if (!add_server) {
            fprintf(stderr, "no RPC backend in this build\n");
            return 2;
        }
        std::string list = servers;
        size_t start = 0;
        while (start <= list.size()) {
            size_t comma = list.find(',', start);
            std::string one = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            if (!one.empty()) {
                ggml_backend_register(add_server(one.c_str()));
            }
            if (comma == std::string::npos) {
                break;
            }
            start = comma + 1;
        }
    }

    llama_model_params mparams = llama_model_default_params();
    mparams.use_extra_bufts = atoi(argv[2]) != 0;
    mparams.n_gpu_layers = atoi(argv[3]);
    // LLAMA_PROBE_SPLIT=3,1: --tensor-split's proportions per device
    static float split[128] = {0};
    if (const char * text = getenv("LLAMA_PROBE_SPLIT")) {
        size_t n = 0;
        for (const char * p = text; *p && n < llama_max_devices() && n < 128; ++n) {
            split[n] = strtof(p, nullptr);
            p = strchr(p, ',');
            if (!p) {
                break;
            }
            ++p;
        }
        mparams.tensor_split = split;
    }
    printf("@@ model %s repack=%d ngl=%d\n", argv[1], mparams.use_extra_bufts ? 1 : 0, mparams.n_gpu_layers);
    fflush(stdout);
    llama_model * model = llama_model_load_from_file(argv[1], mparams);
    if (!model) {
        printf("@@ model-failed\n");
        return 1;
    }
    for (int i = 4; i < argc; ++i) {
        char cache[16] = {0}, fa[8] = {0};
        unsigned ctx = 0, n_seq = 1, unified = 0, ubatch = 512;
        if (sscanf(argv[i], "%u:%15[^:]:%7[^:]:%u:%u:%u", &ctx, cache, fa, &n_seq, &unified, &ubatch) != 6) {
            fprintf(stderr, "bad config %s\n", argv[i]);
            return 2;
        }
        llama_context_params cparams = llama_context_default_params();
        cparams.n_ctx = ctx;
        cparams.n_seq_max = n_seq;
        cparams.kv_unified = unified != 0;
        cparams.n_ubatch = ubatch;
        cparams.type_k = cparams.type_v = cache_type(cache);
        cparams.flash_attn_type = strcmp(fa, "on") == 0 ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                                : strcmp(fa, "off") == 0 ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                : LLAMA_FLASH_ATTN_TYPE_AUTO;
        cparams.swa_full = false;  // common.h: llama-cli and llama-server keep the SWA cache small
        cparams.n_threads = cparams.n_threads_batch = 1;
        printf("@@ config %s\n", argv[i]);
        fflush(stdout);
        llama_context * lctx = llama_init_from_model(model, cparams);
        if (!lctx) {
            printf("@@ context-failed\n");
        } else {
            llama_free(lctx);
        }
        printf("@@ end\n");
        fflush(stdout);
    }
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
