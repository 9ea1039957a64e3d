// eddy.hpp: C++17 conveniences over eddy.h (header-only; link libeddy as for C).
//
// - RAII: eddy::ModelPtr, eddy::ContextPtr, eddy::SamplerPtr are std::unique_ptr with deleters
//   that call eddy_*_free, so handles are released on every path, exceptions included.
// - Errors: failures throw eddy::Error (a std::runtime_error carrying the eddy_status and the
//   message of eddy_last_error()). eddy::generate returns EDDY_STATUS_ABORTED instead of
//   throwing, since an abort is a requested outcome.
// - Callbacks: eddy::generate takes any callable bool(std::string_view piece); an exception it
//   throws is caught before it can cross into the library and rethrown after the call returns.
//
// The C handles stay reachable with .get(): every function of eddy.h can be mixed in.
#ifndef EDDY_HPP
#define EDDY_HPP

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "eddy.h"

namespace eddy {

struct ModelDeleter {
    void operator()(eddy_model *m) const noexcept { eddy_model_free(m); }
};
struct ContextDeleter {
    void operator()(eddy_context *c) const noexcept { eddy_context_free(c); }
};
struct SamplerDeleter {
    void operator()(eddy_sampler *s) const noexcept { eddy_sampler_free(s); }
};

/// Owns a model; contexts made from it keep it alive on their own.
using ModelPtr = std::unique_ptr<eddy_model, ModelDeleter>;
/// Owns a context (one thread at a time).
using ContextPtr = std::unique_ptr<eddy_context, ContextDeleter>;
/// Owns a sampler (one thread at a time).
using SamplerPtr = std::unique_ptr<eddy_sampler, SamplerDeleter>;

/// A failed call: its status and message.
class Error : public std::runtime_error {
  public:
    Error(eddy_status status, const std::string &what)
        : std::runtime_error(what), status_(status) {}
    eddy_status status() const noexcept { return status_; }

  private:
    eddy_status status_;
};

/// Throws eddy::Error unless status is EDDY_STATUS_OK.
inline void check(eddy_status status, const char *call) {
    if (status != EDDY_STATUS_OK) {
        throw Error(status, std::string(call) + ": " + eddy_last_error());
    }
}

/// Loads the GGUF model at path.
inline ModelPtr load_model(const std::string &path) {
    eddy_model *m = nullptr;
    check(eddy_model_load(path.c_str(), &m), "eddy_model_load");
    return ModelPtr(m);
}

/// A context over model (the context holds its own reference to the model).
inline ContextPtr new_context(const eddy_model *model,
                              const eddy_context_params &params = eddy_context_default_params()) {
    eddy_context *c = nullptr;
    check(eddy_context_new(model, &params, &c), "eddy_context_new");
    return ContextPtr(c);
}

/// A sampler for model's vocabulary.
inline SamplerPtr new_sampler(const eddy_model *model,
                              const eddy_sampler_params &params = eddy_sampler_default_params()) {
    eddy_sampler *s = nullptr;
    check(eddy_sampler_new(model, &params, &s), "eddy_sampler_new");
    return SamplerPtr(s);
}

/// Constrains sampler's output to a JSON schema, a Lark grammar or a regular expression (kind:
/// EDDY_CONSTRAINT_JSON_SCHEMA, _LARK, _REGEX; see eddy_sampler_set_constraint). Throws
/// eddy::Error (EDDY_STATUS_INVALID_CONSTRAINT with the reason for a bad text).
inline void set_constraint(eddy_sampler *sampler, const eddy_model *model,
                           eddy_constraint_kind kind, std::string_view text) {
    check(eddy_sampler_set_constraint(sampler, model, kind, text.data(), text.size()),
          "eddy_sampler_set_constraint");
}

/// Removes sampler's constraint.
inline void clear_constraint(eddy_sampler *sampler, const eddy_model *model) {
    check(eddy_sampler_set_constraint(sampler, model, EDDY_CONSTRAINT_REGEX, nullptr, 0),
          "eddy_sampler_set_constraint");
}

/// Token ids of text (see eddy_tokenize).
inline std::vector<eddy_token> tokenize(const eddy_model *model, std::string_view text,
                                        bool add_special, bool parse_special) {
    size_t n = 0;
    eddy_status st =
        eddy_tokenize(model, text.data(), text.size(), add_special, parse_special, nullptr, 0, &n);
    if (st != EDDY_STATUS_BUFFER_TOO_SMALL) check(st, "eddy_tokenize");
    std::vector<eddy_token> ids(n);
    check(eddy_tokenize(model, text.data(), text.size(), add_special, parse_special, ids.data(),
                        ids.size(), &n),
          "eddy_tokenize");
    ids.resize(n);
    return ids;
}

/// The bytes of one token (may be part of a UTF-8 character).
inline std::string token_to_piece(const eddy_model *model, eddy_token token, bool special) {
    size_t n = 0;
    eddy_status st = eddy_token_to_piece(model, token, special, nullptr, 0, &n);
    if (st != EDDY_STATUS_BUFFER_TOO_SMALL) check(st, "eddy_token_to_piece");
    std::string piece(n, '\0');
    check(eddy_token_to_piece(model, token, special, piece.data(), piece.size(), &n),
          "eddy_token_to_piece");
    piece.resize(n);
    return piece;
}

/// One chat message: role ("system", "user", "assistant", "tool") and content.
struct ChatMessage {
    std::string role;
    std::string content;
};

/// A conversation rendered into prompt text by the model's chat template (chat_template
/// empty), a built-in format ("gemma", "chatml") or a Jinja source; tools_json is empty or a
/// JSON array of tool schemas. Throws eddy::Error (EDDY_STATUS_INVALID_TEMPLATE for a broken
/// template).
inline std::string chat_apply_template(const eddy_model *model,
                                       const std::vector<ChatMessage> &messages,
                                       bool add_generation_prompt = true,
                                       const std::string &chat_template = "",
                                       const std::string &tools_json = "") {
    std::vector<eddy_chat_message> msgs;
    msgs.reserve(messages.size());
    for (const ChatMessage &m : messages) msgs.push_back({m.role.c_str(), m.content.c_str()});
    const char *tmpl = chat_template.empty() ? nullptr : chat_template.c_str();
    const char *tools = tools_json.empty() ? nullptr : tools_json.c_str();
    size_t n = 0;
    eddy_status st = eddy_chat_apply_template(model, tmpl, msgs.data(), msgs.size(), tools,
                                              add_generation_prompt, nullptr, 0, &n);
    if (st != EDDY_STATUS_BUFFER_TOO_SMALL) check(st, "eddy_chat_apply_template");
    std::string text(n, '\0');
    check(eddy_chat_apply_template(model, tmpl, msgs.data(), msgs.size(), tools,
                                   add_generation_prompt, text.data(), text.size(), &n),
          "eddy_chat_apply_template");
    text.resize(n);
    return text;
}

namespace detail {
template <class F> struct PieceSink {
    F *f;
    std::exception_ptr error;
};
template <class F> bool piece_trampoline(const char *piece, size_t len, void *user_data) {
    auto *sink = static_cast<PieceSink<F> *>(user_data);
    try {
        return (*sink->f)(std::string_view(piece, len));
    } catch (...) {
        sink->error = std::current_exception();
        return false;
    }
}
template <class F> bool abort_trampoline(void *user_data) {
    try {
        return (*static_cast<F *>(user_data))();
    } catch (...) {
        return true;  // an exception in the abort callback stops the call
    }
}
}  // namespace detail

/// eddy_generate with a callable bool(std::string_view piece) (return false to stop).
/// Returns EDDY_STATUS_OK or EDDY_STATUS_ABORTED; throws eddy::Error on any other status, and
/// rethrows what on_piece threw.
template <class F>
eddy_status generate(eddy_context *context, eddy_sampler *sampler, std::string_view prompt,
                     bool add_special, size_t n_predict, F &&on_piece,
                     size_t *n_generated = nullptr) {
    using Fn = std::remove_reference_t<F>;
    detail::PieceSink<Fn> sink{&on_piece, nullptr};
    eddy_status st =
        eddy_generate(context, sampler, prompt.data(), prompt.size(), add_special, n_predict,
                      &detail::piece_trampoline<Fn>, &sink, n_generated);
    if (sink.error) std::rethrow_exception(sink.error);
    if (st != EDDY_STATUS_ABORTED) check(st, "eddy_generate");
    return st;
}

/// Sets the abort callback of context to a callable bool() that must outlive its use (pass
/// nullptr to remove it). An exception thrown by it counts as "abort".
template <class F> void set_abort_callback(eddy_context *context, F *should_abort) {
    if (should_abort == nullptr) {
        check(eddy_context_set_abort_callback(context, nullptr, nullptr),
              "eddy_context_set_abort_callback");
    } else {
        check(eddy_context_set_abort_callback(context, &detail::abort_trampoline<F>,
                                              static_cast<void *>(should_abort)),
              "eddy_context_set_abort_callback");
    }
}

}  // namespace eddy

#endif  // EDDY_HPP
