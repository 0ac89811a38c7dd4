/** Caption metrics (pycocoevalcap-exact BLEU, ROUGE-L, CIDEr-D) and the PTB-style tokenizer. */
export { ptbTokenize, ptbTokens, PTB_PUNCTUATION } from './tokenizer.js';
export { bleuScore, type BleuResult } from './bleu.js';
export { rougeL, lcsLength, ROUGE_BETA } from './rouge.js';
export { ciderD, type CiderResult } from './cider.js';
export {
  scoreCaptions, evaluateCaptions, CocoCaptionsGtSchema, CaptionResultsSchema,
  type CaptionScores, type CaptionEvalResult, type CaptionEvalReport, type TokenizedCaptionItem, type EvaluateCaptionsOptions,
} from './evaluate.js';
