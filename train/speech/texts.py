"""What streams say: keyword phrases, everyday sentences and words that sound like keywords.

Plain data for the stream builder (:mod:`kwspi.train.speech.stream`). The mining streams
(``--text training``) say :data:`TRAINING_CONFUSABLES`, so ``make default-model`` trains on the
windows of them the model fires on, not on the words alone (results/mining.md: as one-second
clips they cost the folds 6-8 points).
"""

from __future__ import annotations

#: A keyword phrase per keyword; ``{kw}`` is the keyword. No other word in them is a keyword.
KEYWORD_PHRASES: dict[str, tuple[str, ...]] = {
    "yes": ("I said {kw}", "{kw} please", "the answer is {kw}"),
    "no": ("I said {kw}", "{kw} thank you", "the answer is {kw}"),
    "up": ("turn the volume {kw}", "pick it {kw}", "scroll {kw} a bit"),
    "down": ("turn the volume {kw}", "sit {kw} please", "scroll {kw} a bit"),
    "left": ("turn {kw} at the corner", "move it to the {kw}", "it is the {kw} door"),
    "right": ("turn {kw} at the lights", "that is {kw}", "move it to the {kw}"),
    "on": ("please turn the lights {kw} now", "switch the radio {kw}", "turn it {kw}"),
    "off": ("turn the lights {kw}", "switch it {kw} please", "the heating is {kw}"),
    "stop": ("{kw} the music", "please {kw} now", "{kw} it"),
    "go": ("let us {kw} home", "ready steady {kw}", "where did they {kw}"),
}
#: For keywords without phrases of their own.
GENERIC_PHRASES = ("I said {kw}", "{kw} please", "the word is {kw}")

#: Everyday sentences without a keyword.
SENTENCES = (
    "the weather is nice today", "can you hear me", "what time is it",
    "I would like a cup of tea", "my phone is in the kitchen", "close the window please",
    "we need more milk and bread", "that sounds good to me", "where are my keys",
    "let us meet tomorrow morning", "the cat is sleeping", "how was your day",
    "this is only a test", "open the door for the dog", "dinner will be ready soon",
    "the bus was late again", "play some music", "call my sister",
    "it is very cold outside", "put the box in the car",
)

#: Words that sound like a keyword, or contain one, but are not keywords. Exact homophones
#: ("know", "write") are left out: no acoustic spotter can tell them from "no" and "right",
#: so their detections would measure this list, not the model.
CONFUSABLE_WORDS = (
    "yesterday", "yet", "yellow", "nobody", "note", "nose", "upper", "cup", "often",
    "office", "coffee", "stopped", "stock", "ago", "going", "goal", "downtown", "town",
    "dawn", "lift", "lifted", "bright", "own", "gone", "alright",
)

#: Confusable words for *training* (what mining streams say), disjoint from every word an
#: evaluation stream speaks (tested), so the streaming figures measure confusables the model
#: never heard.
TRAINING_CONFUSABLES = (
    "yeah", "chess", "dress", "guess", "jet", "snow", "nope", "knot", "slow", "though", "pup",
    "pop", "hop", "supper", "brown", "crown", "clown", "noun", "gown", "theft", "deft", "loft",
    "chef", "cleft", "fight", "night", "white", "ride", "tight", "an", "con", "john", "cough",
    "awful", "toffee", "offer", "shop", "top", "step", "spot", "stuff", "goat", "gold", "glow",
    "grow", "golf",
)

#: Sentences built around confusable words, without a keyword.
CONFUSABLE_SENTENCES = (
    "I saw her yesterday", "nobody is home", "the upper shelf is full",
    "we often walk there", "the clock stopped", "that was long ago",
    "where are you going", "meet me downtown", "I need a lift", "the light is bright",
    "it is all gone", "a cup of coffee", "not yet", "my own house", "the office is closed",
    "take a note", "it is alright",
)

#: Keyword-free words said before and after a keyword in training's keyword-in-context clips
#: (:mod:`kwspi.train.speech.context`), and sentences that windows of connected speech are cut
#: from for its unknown class. Training text only: disjoint from the sentences streams say
#: (tested), so a stream's figures do not measure text the model trained on.
CONTEXT_BEFORE = (
    "okay", "well", "and then", "I think", "can you", "so we", "maybe", "tell me", "I guess",
    "just say", "they said", "she told me", "hey there", "now then", "you know", "at last",
    "and after that", "I heard", "we will", "but then",
)
CONTEXT_AFTER = (
    "again", "for me", "then", "today", "thanks", "okay", "at once", "a bit", "now", "and wait",
    "over there", "and that is all", "by the way", "if you can", "this time", "for a while",
    "I think", "as well", "quickly", "with care",
)
CONTEXT_SENTENCES = (
    "we walked along the river after lunch", "the children are painting in the garden",
    "she bought fresh bread at the market", "this train will call at every station",
    "my brother fixed the kitchen tap", "the meeting moved to thursday afternoon",
    "a small bird sat by the fence", "please bring the blue chair inside",
    "the library opens at nine", "he forgot his umbrella at work", "they planted tomatoes last spring",
    "our neighbours have a friendly cat", "the soup needs a little more salt",
    "I will send the letter tomorrow", "the film was longer than we thought",
    "a warm wind came from the sea", "the printer has run out of paper",
    "my grandmother tells wonderful stories", "the shop around the corner sells flowers",
    "we should paint the fence this summer", "the baby is finally asleep",
    "the bridge was built long before the war", "can we have pasta for dinner",
    "the garden looks lovely in the evening", "the game starts at half past seven",
)
