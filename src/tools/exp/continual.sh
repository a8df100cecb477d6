#!/usr/bin/env bash
# continual.sh [DIR]: section 5 of docs/results.md (`make exp-continual`), the paper's Table 1 in miniature.
#
# 1. Pretrain a plain sliding-window model (window 64) on the text of section 2.
# 2. `ittt convert --add-ttt` both layers with the release's initialisation (conv 0,
#    P small): the logits must equal the plain model's bit for bit at step 0; the
#    script compares `ittt forward --json` of both on a held-out byte sequence and
#    stops if they differ.
# 3. Continue training for the same tokens: the plain model (swa_cont), the TTT model
#    with every parameter trained (ttt_cont) and with only the TTT parameters trained
#    (ttt_only, --train-only '*.ttt_*'); lr 3e-3, the TTT parameters at 10x (as section 2).
# 4. Long-context loss: section 2's metric (the final 64 held-out bytes after 0..960
#    bytes of context). Needle accuracy: the format never occurs in text, so each
#    continued model is then trained the same while on section 4's needle training
#    task with a random-token haystack (every parameter; lrs as section 4) and scored on
#    held-out multi-key needles (4 needles, one queried) at depths 0, 50, 100%, n = 256.
# Results: $DIR/results.json, $DIR/table.md, $DIR/context.png.
#   env: STEPS (pretraining, default 1500), CONT (continued, default 750), NEEDLE (default 1500)
set -euo pipefail
cd "$(dirname "$0")/../../.."
source src/tools/exp/lib.sh
dir=${1:-out/exp-continual}
steps=${STEPS:-$(exp_size 1500 4)}
cont=${CONT:-$(exp_size 750 4)}
needle=${NEEDLE:-$(exp_size 1500 4)}
depths=$(exp_size "0 50 100" "0")
needle_opt="keys=4,values=1,queries=1,filler=random"  # scored: multi-key, one queried
needle_train="keys=4,values=4,queries=4,filler=random"  # trained on: section 4's training task, random haystack
n_dep=$(echo "$depths" | wc -w)
exp_begin continual "$dir" 0
exp_text_setup
EXP_UNITS=$((steps + 3 * (cont + needle + 5 * n_dep) + 20 * n_len + 10))
text_flags=(--task text --task-opt "$train_opt" --batch "$batch" --seq-len "$seq" --lr 3e-3 --warmup 50)

# 1. pretraining
exp_train pretrain_swa "$steps" "${text_flags[@]}" --seed 1 --config data/configs/exp/text_swa.json --steps "$steps"
pre=$(ls -d "$dir/runs/pretrain_swa"/step-* | tail -n 1)

# 2. the drop-in, checked bit for bit
ttt_start=$dir/runs/ttt_start
if [ ! -f "$ttt_start/model.safetensors" ]; then
    rm -rf "$ttt_start"
    "$EXP_BIN" convert "$pre" "$ttt_start" --add-ttt --ttt-layers 0,1 --ttt-chunk 64 --ttt-lr 0.3 --ttt-target input_embed > /dev/null
fi
# 300 held-out bytes as tokens (byte b is token b + 4)
probe_tokens=$(head -c 300 "$dir/corpus/heldout.txt" | od -An -v -tu1 | tr -s ' \n' '\n\n' | sed '/^$/d' | awk '{ printf "%s%d", (NR > 1 ? "," : ""), $1 + 4 }')
exp_ittt forward --ckpt "$pre" --tokens "$probe_tokens" --json > "$dir/forward_plain.json"
exp_ittt forward --ckpt "$ttt_start" --tokens "$probe_tokens" --json > "$dir/forward_ttt.json"
if cmp -s "$dir/forward_plain.json" "$dir/forward_ttt.json"; then
    drop_in=true
    echo "exp-continual: drop-in check: the TTT model's logits equal the plain model's bit for bit (300 tokens)" >&2
else
    echo "exp-continual: drop-in check FAILED: $dir/forward_plain.json and $dir/forward_ttt.json differ" >&2
    exit 1
fi

# 3. continued training, same tokens (--seed 2: another stream of text windows than pretraining's)
exp_train swa_cont "$cont" "${text_flags[@]}" --seed 2 --ckpt "$pre" --steps "$cont"
exp_train ttt_cont "$cont" "${text_flags[@]}" --seed 2 --ckpt "$ttt_start" --steps "$cont" --ttt-lr-scale 10
exp_train ttt_only "$cont" "${text_flags[@]}" --seed 2 --ckpt "$ttt_start" --steps "$cont" --ttt-lr-scale 10 --train-only '*.ttt_*'

# 4. long-context loss, then the needle phase
models="pretrain_swa swa_cont ttt_cont ttt_only"
for m in $models; do exp_text_evals "$m"; done
for m in swa_cont ttt_cont ttt_only; do
    lr=3e-3 scale=1  # as section 4: the plain model at 3e-3, the TTT models with section 1's recipe
    if [ "$m" != swa_cont ]; then lr=1e-3 scale=30; fi
    exp_train "${m}_needle" "$needle" --task needle --task-opt "$needle_train,depth=-1" --ckpt "$(ls -d "$dir/runs/$m"/step-* | tail -n 1)" \
        --steps "$needle" --batch "$(exp_size 16 2)" --seq-len 256 --lr "$lr" --warmup 30 --ttt-lr-scale "$scale" --seed 1
    for dp in $depths; do
        exp_eval "${m}_needle" "$dir/runs/${m}_needle.d$dp.eval.json" 5 --task needle --task-opt "$needle_opt,depth=$dp" --seed 1000 \
            --batches "$(exp_size 2 1)" --batch "$eval_batch" --seq-len 256
    done
done

# ---- table, plot, results.json
{
    printf '| model | trained |'
    for n in $lengths; do printf ' loss n = %s |' "$n"; done
    for dp in $depths; do printf ' needle depth %s%% |' "$dp"; done
    printf '\n|---|---|'
    for _ in $lengths $depths; do printf -- '---|'; done
    echo
    for m in $models; do
        case $m in
            pretrain_swa) what="pretrained SWA ($steps steps)" ;;
            swa_cont) what="+ $cont steps, plain" ;;
            ttt_cont) what="+ TTT (release init), $cont steps, all parameters" ;;
            ttt_only) what="+ TTT (release init), $cont steps, TTT parameters only" ;;
        esac
        printf '| `%s` | %s |' "$m" "$what"
        exp_text_losses "$m"
        for dp in $depths; do
            if [ "$m" = pretrain_swa ]; then printf ' - |'; else
                printf ' %s |' "$(awk -v a="$(exp_field "$dir/runs/${m}_needle.d$dp.eval.json" accuracy)" 'BEGIN { printf "%.1f%%", 100 * a }')"
            fi
        done
        echo
    done
} > "$dir/table.md"
exp_context_plot "Continual training: held-out loss on the final 64 bytes vs context (window 64)" \
    pretrain_swa="pretrained SWA" swa_cont="continued, plain SWA" ttt_cont="continued with TTT (all parameters)" \
    ttt_only="continued with TTT (TTT parameters only)"
json_rows=""
for m in $models; do
    needles=""
    if [ "$m" != pretrain_swa ]; then
        for dp in $depths; do needles+="${needles:+, }{\"depth\": $dp, \"eval\": $(cat "$dir/runs/${m}_needle.d$dp.eval.json")}"; done
    fi
    json_rows+="${json_rows:+,}
  {\"model\": \"$m\", \"text_evals\": [$(exp_text_evals_json "$m")], \"needle_after_${needle}_steps\": [$needles]}"
done
printf '{"section": "continual", "run": %s, "drop_in_bit_identical": %s, "pretrain_steps": %s, "continued_steps": %s, "needle_steps": %s, "needle_train_task": "%s", "needle_task": "%s", "models": [%s\n]}\n' \
    "$(exp_machine_json)" "$drop_in" "$steps" "$cont" "$needle" "$needle_train" "$needle_opt" "$json_rows" > "$dir/results.json"
cat "$dir/table.md"
exp_end
