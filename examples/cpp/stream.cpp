// stream.cpp: the C++ wrapper (include/eddy.hpp): RAII handles, a lambda streaming the text,
// an abort callback that stops generation after N tokens, then the same context going on; a
// chat prompt rendered with the model's template.
//
//   cargo build --release -p eddy-ffi
//   c++ -std=c++17 -Wall -Wextra -Werror examples/cpp/stream.cpp -Iinclude
//       target/release/libeddy.a -lm -lpthread -ldl -o stream      (one line)
//   ./stream models/SmolLM2-135M-Instruct.Q4_1.gguf 16
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "eddy.hpp"

int main(int argc, char **argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " MODEL.gguf N_BEFORE_ABORT\n";
        return 2;
    }
    const size_t n_abort = std::strtoul(argv[2], nullptr, 10);
    try {
        eddy::ModelPtr model = eddy::load_model(argv[1]);

        eddy_context_params cp = eddy_context_default_params();
        cp.n_sink = 4;
        cp.n_window = 256;
        eddy::ContextPtr ctx = eddy::new_context(model.get(), cp);

        eddy_sampler_params sp = eddy_sampler_default_params();
        sp.temperature = 0.7f;
        sp.seed = 42;
        eddy::SamplerPtr sampler = eddy::new_sampler(model.get(), sp);

        const std::string prompt = "Once upon a time, in a small village by the sea,";
        const size_t n_prompt = eddy::tokenize(model.get(), prompt, true, true).size();

        // The abort callback is polled before each generated token: stop once the context
        // holds the prompt and n_abort generated tokens.
        eddy_context *c = ctx.get();
        auto stop_after_n = [&]() { return eddy_context_n_seen(c) >= n_prompt + n_abort; };
        eddy::set_abort_callback(c, &stop_after_n);

        std::string text;
        auto print = [&](std::string_view piece) {
            text += piece;
            std::cout << piece << std::flush;
            return true;
        };
        size_t n_generated = 0;
        eddy_status st = eddy::generate(c, sampler.get(), prompt, true, 256, print, &n_generated);
        std::cout << "\n";
        std::cerr << "stream: status " << st << ", " << n_generated << " tokens\n";
        if (st == EDDY_STATUS_ABORTED && n_generated != n_abort) {
            std::cerr << "stream: aborted after " << n_generated << " tokens, expected " << n_abort
                      << "\n";
            return 1;
        }

        // The aborted context is usable: go on from where it stopped, without the callback.
        eddy::set_abort_callback<decltype(stop_after_n)>(c, nullptr);
        size_t n_more = 0;
        st = eddy::generate(c, sampler.get(), "", false, 8, print, &n_more);
        std::cout << "\n";
        std::cerr << "stream: continued with " << n_more << " more tokens; context holds "
                  << eddy_context_n_seen(c) << "\n";
        if (st != EDDY_STATUS_OK || eddy_context_n_seen(c) != n_prompt + n_generated + n_more) {
            std::cerr << "stream: unexpected token count\n";
            return 1;
        }

        // A chat prompt in the model's own format, and a broken template as an exception.
        const std::string chat = eddy::chat_apply_template(
            model.get(), {{"system", "Be brief."}, {"user", "Name a colour."}});
        std::cerr << "stream: chat prompt of " << chat.size() << " bytes\n";
        if (chat.find("Name a colour.") == std::string::npos) {
            std::cerr << "stream: the chat prompt lacks the user's message\n";
            return 1;
        }
        try {
            eddy::chat_apply_template(model.get(), {{"user", "x"}}, true, "{% if %}");
            std::cerr << "stream: a broken template was accepted\n";
            return 1;
        } catch (const eddy::Error &e) {
            if (e.status() != EDDY_STATUS_INVALID_TEMPLATE) throw;
        }

        // Constrained output: a regex on the same sampler, then a broken one as an exception.
        eddy::set_constraint(sampler.get(), model.get(), EDDY_CONSTRAINT_REGEX,
                             "(0[1-9]|1[0-2]):[0-5][0-9] (am|pm)");
        std::string time;
        auto keep = [&](std::string_view piece) {
            time += piece;
            return true;
        };
        st = eddy::generate(c, sampler.get(), " The ferry leaves at ", false, 32, keep);
        std::cerr << "stream: constrained reply \"" << time << "\"\n";
        if (st != EDDY_STATUS_OK || time.size() != 8 || time[2] != ':') {
            std::cerr << "stream: the constrained reply does not match the regex\n";
            return 1;
        }
        try {
            eddy::set_constraint(sampler.get(), model.get(), EDDY_CONSTRAINT_REGEX, "(ab");
            std::cerr << "stream: a broken regex was accepted\n";
            return 1;
        } catch (const eddy::Error &e) {
            if (e.status() != EDDY_STATUS_INVALID_CONSTRAINT) throw;
        }
        eddy::clear_constraint(sampler.get(), model.get());
    } catch (const eddy::Error &e) {
        std::cerr << "stream: " << e.what() << " (status " << e.status() << ")\n";
        return 1;
    }
    return 0;
}
