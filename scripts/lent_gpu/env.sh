# Sourced at the start of every command on a GPU machine lent in short calls, which receives only the checkout (see
# ladder.sh): installs the carried optuna wheels, points the caches into the checkout (out/, ignored), unpacks the
# GPT-2 BPE.
[ -d /tmp/site/optuna ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl 2>&1 | tail -2
# the token cache in a folder .gitignore names (out/), which a warm machine keeps between calls as it keeps the
# ladder's checkpoints, so a call does not tokenise again (~24 s); the study's BPE is carried and copied in
mkdir -p out/lent_gpu_cache/tokenizers && cp -n .cache_ladder/tokenizers/* out/lent_gpu_cache/tokenizers/ 2>/dev/null
export PYTHONPATH=$PWD:/tmp/site ARCHSEARCH_CACHE=$PWD/out/lent_gpu_cache PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_cache
if [ -f .data/gpt2/gpt2.tiktoken.xz ]; then  # carried compressed: 4 shards + wheels + the checkout leave < 1 MiB
    python3 -c "import lzma; open('/tmp/gpt2.tiktoken','wb').write(lzma.open('.data/gpt2/gpt2.tiktoken.xz').read())"
    export ARCHSEARCH_GPT2_BPE=/tmp/gpt2.tiktoken
fi
python3 -c "import optuna, torch; print('optuna', optuna.__version__, 'torch', torch.__version__)" || exit 1
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
