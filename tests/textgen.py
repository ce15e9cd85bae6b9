# ruff: noqa: E501  (word tables: one line per slot reads better than wrapped strings)
"""The project's own multilingual test corpus: real words in simple templates, from a seeded RNG.

`python tests/textgen.py` rewrites `recipes/demo/corpus/<lang>.txt` (one document per line); a test checks
the committed files equal this generator's output. Real function words and content words (not syllable
soup) so that character-n-gram language identification (langdetect) labels every line correctly.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

LINES = 200
OUT = Path(__file__).resolve().parents[1] / "recipes" / "demo" / "corpus"

# Per language: subjects, verbs (3rd person, transitive), objects, endings (place/time phrases), joiner.
WORDS: dict[str, dict[str, list[str]]] = {
    "en": {
        "s": "the teacher|my neighbour|the old farmer|our children|the young doctor|a tired traveller|the mayor of the town|her brother|the small company|every student|the baker|my grandmother|the new government|a quiet writer|the football team".split(
            "|"
        ),
        "v": "reads|buys|writes|finds|cleans|repairs|sells|paints|remembers|carries|watches|builds|explains|forgets|shares".split(
            "|"
        ),
        "o": "a long letter|the wooden table|fresh bread|an interesting book|the broken window|some warm clothes|the morning newspaper|a beautiful garden|the heavy boxes|an old photograph|the kitchen floor|strong coffee|the yellow bicycle|a difficult question|their weekly report".split(
            "|"
        ),
        "e": "before breakfast|after the meeting|near the river|in the evening|with great care|during the winter|without any help|at the station|because it was raining|every Sunday morning|while the others were sleeping|on the way home|behind the school|as quickly as possible|in the quiet village".split(
            "|"
        ),
        "j": " and then | but later | although | because ".split("|"),
    },
    "pt": {
        "s": "o professor|a minha vizinha|o velho agricultor|as nossas crianças|a jovem médica|um viajante cansado|o prefeito da cidade|o irmão dela|a pequena empresa|cada estudante|o padeiro|a minha avó|o novo governo|uma escritora tranquila|o time de futebol".split(
            "|"
        ),
        "v": "lê|compra|escreve|encontra|limpa|conserta|vende|pinta|lembra|carrega|assiste|constrói|explica|esquece|divide".split(
            "|"
        ),
        "o": "uma carta comprida|a mesa de madeira|pão fresquinho|um livro interessante|a janela quebrada|roupas quentes|o jornal da manhã|um jardim bonito|as caixas pesadas|uma fotografia antiga|o chão da cozinha|café forte|a bicicleta amarela|uma pergunta difícil|o relatório da semana".split(
            "|"
        ),
        "e": "antes do almoço|depois da reunião|perto do rio|à noite|com muito cuidado|durante o inverno|sem nenhuma ajuda|na estação|porque estava chovendo|todos os domingos|enquanto os outros dormiam|no caminho de casa|atrás da escola|o mais rápido possível|na aldeia tranquila".split(
            "|"
        ),
        "j": " e depois | mas também | embora | porque então ".split("|"),
    },
    "es": {
        "s": "el profesor|mi vecina|el viejo campesino|nuestros hijos|la joven doctora|un viajero cansado|el alcalde del pueblo|su hermano|la pequeña empresa|cada estudiante|el panadero|mi abuela|el nuevo gobierno|una escritora tranquila|el equipo de fútbol".split(
            "|"
        ),
        "v": "lee|compra|escribe|encuentra|limpia|arregla|vende|pinta|recuerda|lleva|mira|construye|explica|olvida|comparte".split(
            "|"
        ),
        "o": "una carta larga|la mesa de madera|pan recién hecho|un libro interesante|la ventana rota|ropa de abrigo|el periódico de la mañana|un jardín precioso|las cajas pesadas|una fotografía antigua|el suelo de la cocina|café muy fuerte|la bicicleta amarilla|una pregunta difícil|el informe semanal".split(
            "|"
        ),
        "e": "antes del desayuno|después de la reunión|cerca del río|por la noche|con mucho cuidado|durante el invierno|sin ninguna ayuda|en la estación|porque estaba lloviendo|todos los domingos|mientras los demás dormían|de camino a casa|detrás de la escuela|lo más rápido posible|en el pueblo tranquilo".split(
            "|"
        ),
        "j": " y luego | pero después | aunque | porque ".split("|"),
    },
    "fr": {
        "s": "le professeur|ma voisine|le vieux paysan|nos enfants|la jeune médecin|un voyageur fatigué|le maire de la ville|son frère|la petite entreprise|chaque étudiant|le boulanger|ma grand-mère|le nouveau gouvernement|une écrivaine discrète|l'équipe de football".split(
            "|"
        ),
        "v": "lit|achète|écrit|trouve|nettoie|répare|vend|peint|se rappelle|porte|regarde|construit|explique|oublie|partage".split(
            "|"
        ),
        "o": "une longue lettre|la table en bois|du pain frais|un livre intéressant|la fenêtre cassée|des vêtements chauds|le journal du matin|un beau jardin|les caisses lourdes|une vieille photographie|le sol de la cuisine|un café très fort|le vélo jaune|une question difficile|le rapport de la semaine".split(
            "|"
        ),
        "e": "avant le petit déjeuner|après la réunion|près de la rivière|le soir|avec beaucoup de soin|pendant l'hiver|sans aucune aide|à la gare|parce qu'il pleuvait|tous les dimanches|pendant que les autres dormaient|sur le chemin du retour|derrière l'école|aussi vite que possible|dans le village tranquille".split(
            "|"
        ),
        "j": " et ensuite | mais plus tard | bien que | parce que ".split("|"),
    },
    "de": {
        "s": "der Lehrer|meine Nachbarin|der alte Bauer|unsere Kinder|die junge Ärztin|ein müder Reisender|der Bürgermeister der Stadt|ihr Bruder|die kleine Firma|jeder Student|der Bäcker|meine Großmutter|die neue Regierung|eine ruhige Schriftstellerin|die Fußballmannschaft".split(
            "|"
        ),
        "v": "liest|kauft|schreibt|findet|putzt|repariert|verkauft|malt|vergisst|trägt|beobachtet|baut|erklärt|sucht|teilt".split(
            "|"
        ),
        "o": "einen langen Brief|den hölzernen Tisch|frisches Brot|ein spannendes Buch|das kaputte Fenster|warme Kleidung|die Zeitung von heute|einen schönen Garten|die schweren Kisten|ein altes Foto|den Küchenboden|starken Kaffee|das gelbe Fahrrad|eine schwierige Frage|den wöchentlichen Bericht".split(
            "|"
        ),
        "e": "vor dem Frühstück|nach der Sitzung|in der Nähe des Flusses|am Abend|mit großer Sorgfalt|während des Winters|ohne jede Hilfe|am Bahnhof|weil es geregnet hat|jeden Sonntag|während die anderen schliefen|auf dem Heimweg|hinter der Schule|so schnell wie möglich|in dem ruhigen Dorf".split(
            "|"
        ),
        "j": " und dann | aber später | obwohl | weil ".split("|"),
    },
    "ru": {
        "s": "учитель|моя соседка|старый фермер|наши дети|молодой врач|усталый путешественник|мэр города|её брат|маленькая компания|каждый студент|пекарь|моя бабушка|новое правительство|тихая писательница|футбольная команда".split(
            "|"
        ),
        "v": "читает|покупает|пишет|находит|убирает|чинит|продаёт|рисует|вспоминает|несёт|смотрит|строит|объясняет|забывает|делит".split(
            "|"
        ),
        "o": "длинное письмо|деревянный стол|свежий хлеб|интересную книгу|разбитое окно|тёплую одежду|утреннюю газету|красивый сад|тяжёлые коробки|старую фотографию|пол на кухне|крепкий кофе|жёлтый велосипед|трудный вопрос|еженедельный отчёт".split(
            "|"
        ),
        "e": "перед завтраком|после собрания|возле реки|вечером|с большой осторожностью|зимой|без всякой помощи|на вокзале|потому что шёл дождь|каждое воскресенье|пока остальные спали|по дороге домой|за школой|как можно быстрее|в тихой деревне".split(
            "|"
        ),
        "j": " а потом | но позже | хотя | потому что ".split("|"),
    },
    "ar": {
        "s": "المعلم|جارتي|المزارع العجوز|أطفالنا|الطبيبة الشابة|مسافر متعب|رئيس البلدية|أخوها|الشركة الصغيرة|كل طالب|الخباز|جدتي|الحكومة الجديدة|كاتبة هادئة|فريق كرة القدم".split(
            "|"
        ),
        "v": "يقرأ|يشتري|يكتب|يجد|ينظف|يصلح|يبيع|يرسم|يتذكر|يحمل|يشاهد|يبني|يشرح|ينسى|يشارك".split("|"),
        "o": "رسالة طويلة|الطاولة الخشبية|خبزا طازجا|كتابا مفيدا|النافذة المكسورة|ملابس دافئة|جريدة الصباح|حديقة جميلة|الصناديق الثقيلة|صورة قديمة|أرض المطبخ|قهوة قوية|الدراجة الصفراء|سؤالا صعبا|التقرير الأسبوعي".split(
            "|"
        ),
        "e": "قبل الفطور|بعد الاجتماع|قرب النهر|في المساء|بعناية كبيرة|خلال الشتاء|بدون أي مساعدة|في المحطة|لأن المطر كان يهطل|كل يوم أحد|بينما كان الآخرون نائمين|في الطريق إلى البيت|خلف المدرسة|بأسرع ما يمكن|في القرية الهادئة".split(
            "|"
        ),
        "j": " ثم | لكن بعد ذلك | مع أن | لأن ".split("|"),
    },
    "zh": {
        "s": "老师|我的邻居|老农民|我们的孩子|年轻的医生|疲惫的旅客|市长|她的哥哥|这家小公司|每个学生|面包师|我的奶奶|新政府|一位安静的作家|足球队".split(
            "|"
        ),
        "v": "读|买|写|找到|打扫|修理|卖|画|记得|搬|看|建造|解释|忘记|分享".split("|"),
        "o": "一封长信|那张木桌子|新鲜的面包|一本有趣的书|破了的窗户|暖和的衣服|早上的报纸|美丽的花园|很重的箱子|一张旧照片|厨房的地板|浓咖啡|黄色的自行车|一个难题|每周的报告".split(
            "|"
        ),
        "e": "在早饭以前|在开会以后|在河边|在晚上|非常小心地|在冬天|没有任何帮助|在火车站|因为下雨了|每个星期天|当别人都在睡觉的时候|在回家的路上|在学校后面|尽快地|在安静的村子里".split(
            "|"
        ),
        "j": "，然后|，但是后来|，虽然|，因为".split("|"),
    },
}
LANGS = list(WORDS)

# Syllables for made-up proper names (people, villages, rivers), so that a few thousand lines hold enough
# distinct strings for a 2k-piece vocabulary; the sentences around them stay real words.
SYLLABLES = {
    "en": "ash|bur|ton|ford|ley|wick|ham|brook|dale|mor|well|stan|field|wood|ridge|ing|by|ster|mere|cott".split("|"),
    "pt": [
        c + v for c in "b c d f g j l m n p r s t v x z ch lh nh qu".split() for v in "a e i o u ã á é í ó ô".split()
    ],
    "es": "ba|rri|llo|ña|go|za|que|ja|ro|sa|de|to|ca|mo|ve|la|ra|ni|cio|lez".split("|"),
    "fr": "bou|chen|eau|ville|mont|gny|ault|ier|ron|lac|beau|four|tain|cour|oux|elle|sur|pré|bois|ac".split("|"),
    "de": "berg|dorf|bach|hau|sen|lin|stein|ingen|wald|burg|heim|fel|brück|au|rode|hof|schwa|kirch|tal|lich".split("|"),
    "ru": "ов|ка|ин|ск|во|ра|ли|ев|ни|ко|ма|ло|то|ре|цы|жа|ше|ль|да|ги".split("|"),
    "ar": "بو|ال|مر|سع|ني|دا|حم|كر|يم|فا|طي|لي|جا|زه|قا|نو|صا|رة|هد|عب".split("|"),
    "zh": "王|李|张|刘|陈|杨|黄|赵|周|吴|明|华|国|建|文|平|红|兰|山|海|春|秋|云|东|林|雪|伟|芳|丽|强".split("|"),
}
STOP = {"zh": "。", "ar": ".", "ru": ".", "en": ".", "pt": ".", "es": ".", "fr": ".", "de": "."}


def name(rng: random.Random, lang: str) -> str:
    text = "".join(rng.choice(SYLLABLES[lang]) for _ in range(rng.randint(2, 4)))
    return text[0].upper() + text[1:]


def clause(rng: random.Random, w: dict[str, list[str]], lang: str) -> str:
    s, v, o, e = (rng.choice(w[k]) for k in "svoe")
    if rng.random() < (0.2 if lang == "zh" else 0.4):
        s = name(rng, lang)  # at most one name per clause: each clause stays mostly real words
    if lang == "zh":
        return f"{s}{e}{v}{o}"
    if lang == "de" and rng.random() < 0.5:
        return f"{e[0].upper() + e[1:]} {v} {s} {o}"  # German verb-second order
    return f"{s} {v} {o} {e}"


def document(rng: random.Random, lang: str) -> str:
    """Two sentences, each of one or two clauses: long enough for a reliable language guess."""
    w = WORDS[lang]
    sentences = []
    for _ in range(2):
        text = clause(rng, w, lang)
        if rng.random() < 0.5:
            text += rng.choice(w["j"]) + clause(rng, w, lang)
        if lang != "zh":
            text = text[0].upper() + text[1:]
        sentences.append(text + STOP[lang])
    return ("" if lang == "zh" else " ").join(sentences)


def generate(lang: str, lines: int = LINES, seed: int = 0) -> list[str]:
    rng = random.Random(f"{seed}-{lang}")
    return [document(rng, lang) for _ in range(lines)]


def write_all(folder: Path = OUT) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for lang in LANGS:
        (folder / f"{lang}.txt").write_text("\n".join(generate(lang)) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
