"""A tiny random-weight Z-Image built from the real diffusers classes, with no download.

Used by the `tiny` preset for tests and the embedded demo: it runs the real `ZImagePipeline`
code path (tokenizer chat template, Qwen3 text encoder, transformer, Flux-shaped VAE, flow-match
scheduler) in well under a second per image on a CPU. Its images are noise; never use them as a
quality signal. Checked with diffusers 0.42.1, transformers 5.24.0, torch 2.13.0+cpu.
"""
import torch
from tokenizers import AddedToken
from transformers import Qwen2Tokenizer, Qwen3Config, Qwen3Model
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel

# Reproduces the output of Qwen3's official template for the pipeline's call:
# apply_chat_template([{"role":"user","content":p}], add_generation_prompt=True, enable_thinking=True)
#   -> "<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n"
QWEN3_CHAT_TEMPLATE = (
    "{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def _byte_symbols():  # GPT-2 / Qwen byte->printable-unicode table: a BPE with only these 256 symbols never hits UNK
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tiny_tokenizer(max_len: int = 131072) -> Qwen2Tokenizer:
    vocab = {s: i for i, s in enumerate(_byte_symbols())}  # 256 byte tokens, no merges
    for t in SPECIALS:
        vocab[t] = len(vocab)  # ids 256..260
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=max_len)  # pad=eos=unk="<|endoftext|>" as in Qwen3
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS[1:]])  # keep them atomic
    tok.chat_template = QWEN3_CHAT_TEMPLATE
    return tok


def tiny_components(seed: int = 0, text_dim: int = 32, dim: int = 32) -> dict:
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    # Real Turbo: Qwen3-4B, hidden 2560 = transformer.cap_feat_dim; pipeline uses hidden_states[-2]
    text_encoder = Qwen3Model(Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=text_dim, intermediate_size=2 * text_dim, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id))
    text_encoder.eval()
    # Real Turbo: dim=3840, n_layers=30, n_refiner_layers=2, n_heads=30, cap_feat_dim=2560, axes_dims=[32,48,48]
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=dim, n_layers=2, n_refiner_layers=1,
        n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=text_dim, rope_theta=256.0,
        t_scale=1000.0, axes_dims=[8, 4, 4], axes_lens=[1536, 512, 512])  # sum(axes_dims)==dim//n_heads; lens = real config
    with torch.no_grad():  # diffusers < 0.39 created these with torch.empty (NaN risk in random-init models)
        transformer.x_pad_token.zero_(), transformer.cap_pad_token.zero_()
    # Real Turbo VAE = Flux VAE: 16 latent ch, 4 blocks (128,256,512,512) -> 8x down, so H,W % 16 == 0 (same here)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[32] * 4, layers_per_block=1,
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
        norm_num_groups=32, sample_size=32, scaling_factor=0.3611, shift_factor=0.1159,
        use_quant_conv=False, use_post_quant_conv=False)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)
    return dict(transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)


def tiny_pipeline(seed: int = 0) -> ZImagePipeline:
    return ZImagePipeline(**tiny_components(seed))


# Bump when tiny_components changes: it is the "revision" in every tiny receipt and cache key.
TINY_REVISION = "tiny-v1-seed0"
